//! The manager's search, a sale's detail and the journal's CSV export.

use std::time::Duration;

use kasa_core::payment::MethodKind;
use kasa_core::search::SaleQuery;
use kasa_core::{PayMethod, SaleState};
use kasa_engine::{EngineEvent, ErrorCode};

use super::{harness, manager, wait_for_orders};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn sales_are_found_by_each_filter_paged_and_exported() {
    let h = harness().await;
    let e = &h.engine;
    let session = manager(e).await;
    let orders = wait_for_orders(e, 4).await;
    let mut sold = Vec::new();
    for (i, o) in orders.iter().take(4).enumerate() {
        let sale = e.open_order_sale(&o.order_id).await.unwrap();
        let pay = if i % 2 == 0 { PayMethod::Card } else { PayMethod::Cash { tendered: sale.total } };
        e.pay(&sale.id, pay).await.unwrap();
        assert!(e.wait_settled(&sale.id, WAIT).await.unwrap().is_paid);
        sold.push((sale.id.clone(), o.clone()));
    }
    let shop = e.open_shop_sale().await.unwrap();
    e.add_item(&shop.id, "5449000000996", 2).await.unwrap();
    let shop = e.sale_view(&shop.id).await.unwrap();
    e.pay(&shop.id, PayMethod::Cash { tendered: shop.total }).await.unwrap();
    e.wait_settled(&shop.id, WAIT).await.unwrap();

    let find = |q: SaleQuery| {
        let session = session.clone();
        async move { e.search_sales(&session, q).await.unwrap().sales.into_iter().map(|s| s.id).collect::<Vec<_>>() }
    };
    // By plate, typed as a person would.
    let (first, order) = &sold[0];
    let typed = order.plate_number.to_lowercase().replace(' ', "  ");
    assert_eq!(find(SaleQuery { plate: Some(typed), ..Default::default() }).await, std::slice::from_ref(first));
    assert_eq!(
        find(SaleQuery { order_id: Some(sold[1].1.order_id.clone()), ..Default::default() }).await,
        [sold[1].0.clone()]
    );
    let card = find(SaleQuery { method: Some(MethodKind::Card), ..Default::default() }).await;
    assert_eq!(card.len(), 2);
    assert!(card.contains(&sold[0].0) && card.contains(&sold[2].0));
    assert_eq!(
        find(SaleQuery { text: Some("kola".into()), ..Default::default() }).await,
        std::slice::from_ref(&shop.id)
    );
    let exact = shop.total.minor;
    let q =
        SaleQuery { min_minor: Some(exact), max_minor: Some(exact), text: Some("KOLA".into()), ..Default::default() };
    assert_eq!(find(q).await, std::slice::from_ref(&shop.id));
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(
        find(SaleQuery { from: Some(today.clone()), to: Some(today.clone()), ..Default::default() }).await.len(),
        5
    );
    let tomorrow = time::OffsetDateTime::now_utc().date().next_day().unwrap().to_string();
    assert!(find(SaleQuery { from: Some(tomorrow), ..Default::default() }).await.is_empty());
    let none_open = SaleQuery { states: vec![SaleState::Open, SaleState::Paying], ..Default::default() };
    assert!(find(none_open).await.is_empty());
    let bad = e.search_sales(&session, SaleQuery { from: Some("1.12.2026".into()), ..Default::default() }).await;
    assert_eq!(bad.unwrap_err().code, ErrorCode::BadInput);

    // Pages of two, newest first, add up to all five without repeats.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = e.search_sales(&session, SaleQuery { limit: Some(2), after, ..Default::default() }).await.unwrap();
        seen.extend(page.sales.into_iter().map(|s| s.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], shop.id, "newest first");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5);

    // The detail has the sale's journal and its messages.
    let detail = e.sale_detail(&session, first).await.unwrap();
    assert!(detail.journal.iter().any(|j| j.kind == "payment_approved"), "{:?}", detail.journal);
    assert!(detail.messages.iter().any(|m| m.kind == "card_sale"));

    // The export writes every entry, and the screens hear its progress.
    let mut events = e.subscribe();
    let path = e.export_journal_csv(&session, Some(today.clone()), None).await.unwrap();
    let csv = std::fs::read_to_string(&path).unwrap();
    let entries = e.store().journal_stats().unwrap().entries;
    let rows = csv.lines().count() as i64;
    // Its own entry ("journal_exported") is written after it.
    assert_eq!(rows, entries - 1 + 1, "a header and one row per entry");
    assert!(csv.starts_with(kasa_store::CSV_HEADER.trim_end()));
    let mut heard = false;
    while let Ok(ev) = events.try_recv() {
        if let EngineEvent::Progress { task, done, total } = ev {
            heard |= task == "journal_export" && done == total && total as i64 == entries - 1;
        }
    }
    assert!(heard, "the export's progress was sent");
    let later = e.export_journal_csv(&session, Some("2099-01-01".into()), None).await.unwrap();
    assert_eq!(std::fs::read_to_string(later).unwrap().lines().count(), 1, "only the header");

    // None of it without a session.
    assert_eq!(e.search_sales("nope", SaleQuery::default()).await.unwrap_err().code, ErrorCode::NotAuthorized);
    assert_eq!(e.sale_detail("nope", first).await.unwrap_err().code, ErrorCode::NotAuthorized);
    assert_eq!(e.export_journal_csv("nope", None, None).await.unwrap_err().code, ErrorCode::NotAuthorized);
}
