use super::*;
use crate::{Basket, ShopItem};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::macros::datetime;

fn sale_of(lines: &[(i64, u32)]) -> Sale {
    let mut b = Basket::new(Currency::TRY);
    for (i, (minor, rate)) in lines.iter().enumerate() {
        b.add_item(
            ShopItem {
                sku: format!("SKU{i}"),
                name: format!("Item {i}"),
                unit_price: Money::new(*minor, Currency::TRY),
                vat_rate_bp: *rate,
            },
            1,
        )
        .unwrap();
    }
    Sale::new(crate::SaleId("S1".into()), b, datetime!(2026-12-01 10:00 UTC))
}

#[test]
fn a_refund_is_shared_over_the_rates_exactly_and_in_proportion() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..500 {
        let n = rng.random_range(1..5);
        let lines: Vec<(i64, u32)> =
            (0..n).map(|_| (rng.random_range(1..100_000), [100, 1000, 2000][rng.random_range(0..3)])).collect();
        let sale = sale_of(&lines);
        let total = sale.total().unwrap().minor;
        let amount = Money::new(rng.random_range(1..=total), Currency::TRY);
        let parts = share_by_rate(&sale, amount).unwrap();
        assert_eq!(parts.iter().map(|(_, m)| m.minor).sum::<i64>(), amount.minor, "{lines:?} {amount:?}");
        for (rate, part) in &parts {
            let gross: i64 = lines.iter().filter(|(_, r)| r == rate).map(|(m, _)| m).sum();
            let exact = amount.minor as f64 * gross as f64 / total as f64;
            assert!((part.minor as f64 - exact).abs() < 1.0, "{rate}: {part:?} against {exact}");
        }
    }
}

#[test]
fn a_cash_difference_needs_a_note_and_the_float_left_fits_the_count() {
    let head = ReportHead {
        kind: ReportKind::Z,
        number: Some(1),
        register: "VT-1".into(),
        opened_at: None,
        at: "2026-12-01T20:00:00Z".into(),
        currency: Currency::TRY,
        opening_float: Money::new(50_000, Currency::TRY),
    };
    let cash = Movement {
        kind: MovementKind::Payment,
        sale_id: "S1".into(),
        refund_id: None,
        method: Some(MethodKind::Cash),
        vat_rate_bp: None,
        amount: Money::new(12_345, Currency::TRY),
        vat: Money::new(0, Currency::TRY),
        voiding: false,
    };
    let mut r = add_up(head, [(1, cash)]).unwrap();
    assert_eq!(r.cash_expected.minor, 62_345);
    let tl = |m| Money::new(m, Currency::TRY);
    assert!(matches!(r.close(tl(62_000), None, tl(50_000)), Err(CloseError::NoteNeeded { .. })));
    assert!(matches!(r.close(tl(62_000), Some("  "), tl(50_000)), Err(CloseError::NoteNeeded { .. })));
    assert!(matches!(r.close(tl(62_345), None, tl(70_000)), Err(CloseError::BadFloat(_))));
    r.close(tl(62_000), Some("3.45 short: change given twice"), tl(50_000)).unwrap();
    assert_eq!(r.difference, Some(tl(-345)));
    let mut exact = r.clone();
    exact.close(tl(62_345), None, tl(0)).unwrap();
    assert_eq!(exact.difference, Some(tl(0)));
}
