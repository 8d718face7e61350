//! Benchmark: the manager's day on a journal of 1,000,000 entries (about 143,000 sales of
//! seven steps each, a year and a half of a busy register): search latency over a mix of
//! filters, the Z report of a day of 1,000 sales, a full verification of the keyed chain, and
//! the CSV export's rate and peak memory.
//! Run with `cargo bench -p kasa-engine --bench journal`; prints its figures.

use std::time::{Duration, Instant};

use kasa_core::journal::{JournalKey, JournalRecord};
use kasa_core::payment::{CardSlip, MethodKind, Payment, PaymentKind};
use kasa_core::search::SaleQuery;
use kasa_core::{Basket, Currency, Line, Litres, Money, Sale, SaleId, SaleState, ShopItem};
use kasa_engine::{Config, Engine};
use kasa_sim::{Sandbox, SandboxConfig};
use time::OffsetDateTime;

const ENTRIES: i64 = 1_000_000;
const STEPS: i64 = 7;
const DAY_SALES: i64 = 1_000;

fn tl(minor: i64) -> Money {
    Money::new(minor, Currency::TRY)
}

fn plate(i: i64) -> String {
    format!("34 AB{:04}", i % 20_000)
}

/// Sale `i`: fuel for plate `plate(i)`, sometimes with a coffee; paid by card or cash.
fn sale(i: i64, at: OffsetDateTime) -> Sale {
    let mut b = Basket::new(Currency::TRY);
    let litres = Litres::parse(&format!("{}.{:03}", 20 + i % 30, i % 1000)).unwrap();
    let unit = tl(4_250);
    let amount = litres.price_at(unit).unwrap();
    b.lines.push(Line::Fuel {
        order_id: format!("ORD-{i:08}"),
        pump_no: (i % 8 + 1) as u32,
        plate_number: plate(i),
        product_name: if i % 3 == 0 { "Motorin".into() } else { "Kurşunsuz 95".into() },
        litres,
        unit_price: unit,
        amount,
        vat_rate_bp: 2000,
    });
    if i % 4 == 0 {
        let coffee = ShopItem {
            sku: "8690000000200".into(),
            name: "Türk Kahvesi".into(),
            unit_price: tl(6_000),
            vat_rate_bp: 1000,
        };
        b.add_item(coffee, 1).unwrap();
    }
    let mut s = Sale::new(SaleId(format!("S{i:08}")), b, at);
    let total = s.total().unwrap();
    let kind = if i % 2 == 0 {
        PaymentKind::Card {
            slip: CardSlip {
                masked_pan: format!("**** **** **** {:04}", i % 10_000),
                brand: "VISA".into(),
                entry_mode: "CONTACTLESS".into(),
                approval_code: format!("{:06}", i % 1_000_000),
                terminal_ref: "T1".into(),
                transaction_ref: format!("TR{i}"),
                paid_at: kasa_core::journal::format_time(at),
            },
        }
    } else {
        PaymentKind::Cash { tendered: total, change: tl(0) }
    };
    s.payments.push(Payment { amount: total, kind });
    s.state = SaleState::Completed;
    s.paid_at = Some(at);
    s.updated_at = at;
    s
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("kasa.db");
    let key = JournalKey::public_demo();
    let sales = ENTRIES / STEPS;
    let start = OffsetDateTime::now_utc() - time::Duration::days(540);
    let step = time::Duration::seconds(540 * 86_400 / sales);
    let built = Instant::now();
    {
        let store = kasa_store::Store::open(&db, key.clone()).unwrap();
        for chunk in (0..sales).collect::<Vec<_>>().chunks(5_000) {
            store
                .write(|tx| -> Result<(), kasa_store::StoreError> {
                    for &i in chunk {
                        let at = start + step * i as i32;
                        let s = sale(i, at);
                        tx.put_sale(&s)?;
                        for k in [
                            "sale_opened",
                            "pay_requested",
                            "lock_granted",
                            "payment_approved",
                            "report_acknowledged",
                            "receipt_issued",
                            "slip_printed",
                        ] {
                            let rec = JournalRecord {
                                sale_id: Some(s.id.0.clone()),
                                kind: k.into(),
                                data: serde_json::json!({ "state": s.state, "step": k }),
                            };
                            tx.append_journal(&rec, at)?;
                        }
                        if i == sales - DAY_SALES {
                            // Yesterday's Z: today's shift is the last 1,000 sales.
                            let last = tx.movements_after(0)?.last().map_or(0, |(id, _)| *id);
                            let head = kasa_core::report::ReportHead {
                                kind: kasa_core::report::ReportKind::Z,
                                number: Some(540),
                                register: "VT-0001".into(),
                                opened_at: None,
                                at: kasa_core::journal::format_time(at),
                                currency: Currency::TRY,
                                opening_float: tl(0),
                            };
                            let mut z = kasa_core::report::add_up(head, []).unwrap();
                            z.last_movement = last;
                            z.next_float = Some(tl(0));
                            let e = tx.append_journal(
                                &JournalRecord { sale_id: None, kind: "z_report".into(), data: serde_json::json!({}) },
                                at,
                            )?;
                            tx.insert_z(&z, e.seq)?;
                        }
                    }
                    Ok(())
                })
                .unwrap();
        }
    }
    let store = kasa_store::Store::open(&db, key.clone()).unwrap();
    let entries = store.journal_stats().unwrap().entries;
    println!("journal: {entries} entries, {sales} sales, built in {:.1} s", built.elapsed().as_secs_f64());

    // Search: a mix of what managers ask, each asked 200 times with varying values.
    let today = OffsetDateTime::now_utc().date();
    let mut all = Vec::new();
    for (name, make) in [
        (
            "plate",
            Box::new(|i: i64| SaleQuery { plate: Some(plate(i * 37)), ..Default::default() })
                as Box<dyn Fn(i64) -> SaleQuery>,
        ),
        (
            "order id",
            Box::new(|i: i64| SaleQuery {
                order_id: Some(format!("ORD-{:08}", i * 613 % sales)),
                ..Default::default()
            }),
        ),
        (
            "date range (a week)",
            Box::new(move |i: i64| {
                let d = today - time::Duration::days(7 + i % 400);
                SaleQuery {
                    from: Some(d.to_string()),
                    to: Some((d + time::Duration::days(6)).to_string()),
                    ..Default::default()
                }
            }),
        ),
        (
            "method + month",
            Box::new(move |i: i64| {
                let d = today - time::Duration::days(30 + i % 400);
                SaleQuery {
                    method: Some(MethodKind::Card),
                    from: Some(d.to_string()),
                    to: Some((d + time::Duration::days(30)).to_string()),
                    ..Default::default()
                }
            }),
        ),
        (
            "amount range",
            Box::new(|i: i64| SaleQuery {
                min_minor: Some(100_000 + i * 10),
                max_minor: Some(100_500 + i * 10),
                ..Default::default()
            }),
        ),
        (
            "free text",
            Box::new(|i: i64| SaleQuery { text: Some(format!("{:06}", (i * 7919) % 1_000_000)), ..Default::default() }),
        ),
        (
            "text + plate",
            Box::new(|i: i64| SaleQuery {
                text: Some("kahvesi".into()),
                plate: Some(plate(i * 4)),
                ..Default::default()
            }),
        ),
        ("status, newest page", Box::new(|_| SaleQuery { states: vec![SaleState::Completed], ..Default::default() })),
        (
            "status, a rare one",
            Box::new(|_| SaleQuery { states: vec![SaleState::NeedsAttention], ..Default::default() }),
        ),
        (
            "status + week",
            Box::new(move |i: i64| {
                let d = today - time::Duration::days(7 + i % 400);
                SaleQuery {
                    states: vec![SaleState::Completed],
                    from: Some(d.to_string()),
                    to: Some((d + time::Duration::days(6)).to_string()),
                    ..Default::default()
                }
            }),
        ),
    ] {
        let mut times = Vec::new();
        let mut found = 0;
        for i in 0..200 {
            let q = make(i);
            let t = Instant::now();
            let page = store.search_sales(&q).unwrap();
            times.push(t.elapsed());
            found += page.sales.len();
        }
        all.extend(times.iter().copied());
        println!(
            "search {name:<22} p50 {:6.2} ms  p95 {:6.2} ms  ({:.1} rows a page)",
            ms(percentile(&mut times, 0.5)),
            ms(percentile(&mut times, 0.95)),
            found as f64 / 200.0
        );
    }
    println!("search, all {} queries: p95 {:.2} ms (target <= 20 ms)", all.len(), ms(percentile(&mut all, 0.95)));

    // Full verification of the keyed chain.
    let t = Instant::now();
    let v = store.verify_journal().unwrap();
    assert!(v.is_intact());
    println!("full verify: {} entries in {:.2} s (target <= 3 s)", v.entries, t.elapsed().as_secs_f64());

    // The CSV export, to a file, with peak memory around it.
    std::fs::write("/proc/self/clear_refs", "5").ok();
    let before = vm_hwm_kib();
    let out_path = dir.path().join("journal.csv");
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&out_path).unwrap());
    let t = Instant::now();
    let n = store.export_journal_csv(1, entries + 1, &mut out, &mut |_, _| {}).unwrap();
    drop(out);
    let took = t.elapsed().as_secs_f64();
    let peak = vm_hwm_kib();
    let size = std::fs::metadata(&out_path).unwrap().len();
    println!(
        "CSV export: {n} entries in {took:.2} s = {:.0} entries/s, {:.0} MB written; peak RSS {:.1} MB (before it {:.1} MB)",
        n as f64 / took,
        size as f64 / 1e6,
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    drop(store);

    // The Z report of today's 1,000 sales, through a running register on this database.
    let mut c = SandboxConfig::default();
    c.tokenx.initial_orders = 0;
    let sandbox = Sandbox::start(c).await.unwrap();
    let config = Config::local(data.clone(), &sandbox.tokenx_url(), &sandbox.finix_url(), None)
        .with_local_systems(|n| sandbox.url(n));
    let engine = Engine::start(config, &Config::local_secrets()).await.unwrap();
    engine.set_first_manager_pin("246810").await.unwrap();
    let session = engine.manager_login("246810").await.unwrap().token;
    let mut xs = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let x = engine.x_report(&session).await.unwrap();
        xs.push(t.elapsed());
        assert_eq!(x.sales as i64, DAY_SALES - 1);
    }
    let t = Instant::now();
    let x = engine.x_report(&session).await.unwrap();
    let z = engine.z_report(&session, x.cash_expected, None, tl(0)).await.unwrap();
    let z_took = t.elapsed();
    println!(
        "X report of {} sales: p50 {:.2} ms; Z report (X, count, close, journal, number): {:.2} ms (target <= 50 ms)",
        x.sales,
        ms(percentile(&mut xs, 0.5)),
        ms(z_took)
    );
    assert_eq!(z.number, Some(541));
    engine.shutdown().await;
}
