//! Rendering times of a typical slip: ESC/POS bytes, PDF and printer picture.
//!
//! A plain binary (`cargo bench -p kasa-print --bench render`) that prints the mean and the
//! 99th percentile of each renderer on a card sale of sixteen shop articles and a fuel line,
//! against the targets: 10 µs for the ESC/POS bytes of the laid-out slip, 50 µs with the layout,
//! and 5 ms for the PDF, layout included. The picture has no target; it is timed for the virtual
//! printer's spool.

use std::hint::black_box;
use std::time::{Duration, Instant};

use kasa_core::{
    Basket, CardSlip, Currency, Litres, Money, OrderStatus, Payment, PaymentKind, PumpOrder, Sale, SaleId, ShopItem,
};
use kasa_print::escpos::{Renderer, Setup, render};
use kasa_print::layout::{Width, layout};
use kasa_print::pdf::{Paper, render_pdf};
use kasa_print::raster::render_png;
use kasa_print::{CodePage, Model, Slip, StoreInfo};
use time::macros::datetime;

fn tl(minor: i64) -> Money {
    Money::new(minor, Currency::TRY)
}

/// A paid card sale: a fuel line and sixteen shop articles, a few of them several times.
fn sale() -> Sale {
    let order = PumpOrder {
        order_id: "TXO-000001".into(),
        plate_number: "34 ABC 123".into(),
        pump_no: 3,
        nozzle_no: 1,
        product_code: "DSL".into(),
        product_name: "Motorin".into(),
        litres: Litres::from_milli(30_000),
        unit_price: tl(4589),
        amount: tl(137_670),
        vat_rate_bp: 2000,
        status: OrderStatus::Open,
        created_at: datetime!(2026-11-21 12:00 UTC),
        lock: None,
        receipt: None,
    };
    let mut basket = Basket::for_order(&order);
    let articles = [
        "Çikolatalı Gofret",
        "Su 0,5 L",
        "Ayran 300 ml",
        "Simit",
        "Türk Kahvesi",
        "Sakız",
        "Islak Mendil",
        "Cam Suyu 3 L",
        "Motor Yağı 1 L",
        "Fındıklı Çikolata",
        "Soda",
        "Peynirli Poğaça",
        "Çay",
        "Kek",
        "Şarj Kablosu",
        "Güneş Gözlüğü",
    ];
    for (i, name) in articles.into_iter().enumerate() {
        let item = ShopItem {
            sku: format!("86{i:02}"),
            name: name.into(),
            unit_price: tl(750 + 125 * i as i64),
            vat_rate_bp: 1000,
        };
        let quantity = if i % 5 == 0 { 2 } else { 1 };
        if let Err(e) = basket.add_item(item, quantity) {
            panic!("the benchmark basket: {e}");
        }
    }
    let mut s =
        Sale::new(SaleId("0f3a9c1e-5b7d-4e21-9a55-3c2d1e0b9f77".into()), basket, datetime!(2026-11-21 12:00 UTC));
    s.updated_at = datetime!(2026-11-21 12:04:31 UTC);
    let total = s.total().unwrap_or(tl(0));
    s.payments.push(Payment {
        amount: total,
        kind: PaymentKind::Card {
            slip: CardSlip {
                masked_pan: "************0059".into(),
                brand: "VISA".into(),
                entry_mode: "CHIP_ENTRY".into(),
                approval_code: "004839".into(),
                terminal_ref: "DVdemoKasaTerminal1".into(),
                transaction_ref: "TRarp7Pz21Low4u2Urw5Ub4W".into(),
                paid_at: "2026-11-21T12:04:30Z".into(),
            },
        },
    });
    s
}

/// Times `f` over `runs` runs after `runs / 10` unmeasured ones, and prints the figures.
fn measure(name: &str, runs: usize, target: Option<Duration>, mut f: impl FnMut()) {
    for _ in 0..runs / 10 {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    let mean = times.iter().sum::<Duration>() / runs as u32;
    let p99 = times[(runs * 99 / 100).min(runs - 1)];
    let verdict = match target {
        Some(t) if p99 <= t => format!("(p99 within the {} µs target)", t.as_micros()),
        Some(t) => format!("(p99 OVER the {} µs target)", t.as_micros()),
        None => String::new(),
    };
    println!(
        "{name:<28} {runs:>6} runs   mean {:>8.1} µs   p99 {:>8.1} µs   {verdict}",
        mean.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
    );
}

fn main() {
    let slip = match Slip::from_sale(&sale(), &StoreInfo::default(), false) {
        Ok(slip) => slip,
        Err(e) => panic!("the benchmark slip: {e}"),
    };
    let setup = Setup::new(Model::EPSON_TM, CodePage::Cp857);
    let blocks = layout(&slip, Width::Mm80);
    let escpos = render(&blocks, &setup).map(|b| b.len()).unwrap_or(0);
    let pdf = render_pdf(&blocks, Paper::Roll80).map(|b| b.len()).unwrap_or(0);
    println!(
        "slip: {} lines on the sale, {} rows at 80 mm; {escpos} bytes of ESC/POS, {pdf} bytes of PDF, {} bytes of PNG",
        slip.lines.len(),
        blocks.len(),
        render_png(&blocks, Width::Mm80).len()
    );

    measure("layout only (80 mm)", 20_000, None, || {
        black_box(layout(black_box(&slip), Width::Mm80));
    });
    // A printer's renderer is built once, when the register starts.
    let renderer = Renderer::new(&setup).unwrap_or_else(|e| panic!("the renderer: {e}"));
    measure("ESC/POS render (80 mm)", 20_000, Some(Duration::from_micros(10)), || {
        black_box(renderer.render(black_box(&blocks), false).ok());
    });
    measure("layout + ESC/POS (80 mm)", 20_000, Some(Duration::from_micros(50)), || {
        black_box(renderer.render(&layout(black_box(&slip), Width::Mm80), false).ok());
    });
    measure("layout + PDF (80 mm roll)", 300, Some(Duration::from_millis(5)), || {
        black_box(render_pdf(&layout(black_box(&slip), Width::Mm80), Paper::Roll80).ok());
    });
    measure("layout + PDF (80 mm on A4)", 300, Some(Duration::from_millis(5)), || {
        black_box(render_pdf(&layout(black_box(&slip), Width::Mm80), Paper::A4).ok());
    });
    measure("layout + PNG (80 mm)", 300, None, || {
        black_box(render_png(&layout(black_box(&slip), Width::Mm80), Width::Mm80));
    });
}
