//! Printing never holds a sale: a printer out of paper is reported to the cashier, the slip
//! waits in the queue, and prints once the paper is back. Copies are marked, refund slips and
//! PDFs come from the same layout.

use crate::manager;
use std::time::Duration;

use kasa_core::{PayMethod, SaleState};

use super::{harness, wait_for_orders};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn paper_out_during_a_sale_the_sale_completes_and_the_slip_prints_after_paper_replaced() {
    let h = harness().await;
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    h.sandbox.printer.set_paper_out(true);
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    // The sale does not wait on the printer.
    h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    let mut told = None;
    for _ in 0..200 {
        told = h.engine.status().printer_problem;
        if told.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let told = told.expect("the cashier is told");
    assert!(told.contains("out of paper"), "{told}");
    assert!(h.sandbox.printer.jobs().is_empty(), "nothing printed without paper");
    assert!(h.engine.status().queue_pending >= 1, "the slip waits in the queue");

    // "Paper replaced": the register notices on its own and prints the waiting slip.
    h.sandbox.printer.set_paper_out(false);
    let jobs = h.sandbox.printer.wait_for_jobs(1, WAIT).await;
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].text().contains("TOPLAM"));
    for _ in 0..200 {
        if h.engine.status().printer_problem.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.engine.status().printer_problem, None);

    // A reprint is marked as a copy; a cover left open is reported the same way.
    h.sandbox.printer.set_cover_open(true);
    h.engine.reprint(&sale.id, None).await.unwrap();
    for _ in 0..200 {
        if h.engine.status().printer_problem.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.engine.status().printer_problem.unwrap().contains("cover"));
    h.sandbox.printer.set_cover_open(false);
    h.engine.retry_printer().await.unwrap();
    let jobs = h.sandbox.printer.wait_for_jobs(2, WAIT).await;
    assert!(jobs[1].text().contains("KOPYA"), "{}", jobs[1].text());
    let reprints = h.engine.store().journal_for_sale(&sale.id).unwrap();
    assert!(reprints.iter().any(|e| e.kind == "slip_reprinted"));
}

#[tokio::test]
async fn a_slip_exports_as_a_pdf_and_previews_as_a_picture() {
    let h = harness().await;
    let sale = h.engine.open_shop_sale().await.unwrap();
    let sku = h.engine.catalog()[3].sku.clone();
    h.engine.add_item(&sale.id, &sku, 2).await.unwrap();
    let total = h.engine.sale_view(&sale.id).await.unwrap().total;
    h.engine.pay(&sale.id, PayMethod::Cash { tendered: total }).await.unwrap();
    let path = h.engine.export_slip_pdf(&sale.id, kasa_print::pdf::Paper::A4).await.unwrap();
    let pdf = std::fs::read(&path).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    assert!(pdf.len() < 60_000, "fonts are subset: {} bytes", pdf.len());
    let png = h.engine.slip_png(&sale.id).await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    // The drawer needs the manager PIN and is journaled.
    let session = manager(&h.engine).await;
    assert!(h.engine.open_drawer("wrong-session").await.is_err());
    h.engine.open_drawer(&session).await.unwrap();
    let last = h.sandbox.printer.wait_for_jobs(2, WAIT).await;
    let (_, events) = kasa_print::decode::parse(&last.last().unwrap().bytes, kasa_print::Model::EPSON_TM);
    assert!(events.contains(&kasa_print::decode::Event::Drawer));
}
