//! Slip rendering tests: layout snapshots and the ESC/POS bytes read back.

use expect_test::expect;
use kasa_core::{
    Basket, CardSlip, Currency, Litres, Money, OrderStatus, Payment, PaymentKind, PumpOrder, Sale, SaleId, ShopItem,
};
use time::macros::datetime;

use crate::codepage::{CodePage, Model};
use crate::escpos::{Setup, render};
use crate::layout::{Width, layout, to_text};
use crate::{Slip, StoreInfo, decode};

fn tl(minor: i64) -> Money {
    Money::new(minor, Currency::TRY)
}

fn sale() -> Sale {
    let order = PumpOrder {
        order_id: "TXO-000001".into(),
        plate_number: "34 ABC 123".into(),
        pump_no: 3,
        nozzle_no: 1,
        product_code: "DSL".into(),
        product_name: "Motorin".into(),
        litres: Litres::parse("30.000").unwrap(),
        unit_price: tl(4589),
        amount: tl(137_670),
        vat_rate_bp: 2000,
        status: OrderStatus::Open,
        created_at: datetime!(2026-11-21 12:00 UTC),
        lock: None,
        receipt: None,
    };
    let mut basket = Basket::for_order(&order);
    basket
        .add_item(
            ShopItem { sku: "869".into(), name: "Çikolatalı Gofret".into(), unit_price: tl(1250), vat_rate_bp: 1000 },
            2,
        )
        .unwrap();
    let mut s =
        Sale::new(SaleId("0f3a9c1e-5b7d-4e21-9a55-3c2d1e0b9f77".into()), basket, datetime!(2026-11-21 12:00 UTC));
    s.updated_at = datetime!(2026-11-21 12:04:31 UTC);
    s.payments.push(Payment {
        amount: tl(140_170),
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

#[test]
fn turkish_card_slip_80mm() {
    let slip = Slip::from_sale(&sale(), &StoreInfo::default(), false).unwrap();
    expect![[r#"
              KASA PETROL
                       Atatürk Cad. No: 1
                       Kadıköy / İstanbul
                    Kadıköy V.D. 1234567890
        ------------------------------------------------
        Tarih 21.11.2026 15:04            Satış 1e0b9f77
        ------------------------------------------------
        P3 Motorin
          30,000 L x 45,89  34 ABC 123          1.376,70
        Çikolatalı Gofret
          2 x 12,50                                25,00
        ------------------------------------------------
        TOPLAM                              1.401,70 TRY
        KDV %10                                     2,27
        KDV %20                                   229,45
        ------------------------------------------------
        KART VISA ************0059              1.401,70
          Onay 004839  CHIP_ENTRY
          Terminal DVdemoKasaTerminal1
          Ref TRarp7Pz21Low4u2Urw5Ub4W
        ------------------------------------------------
               Teşekkür ederiz, iyi yolculuklar!
    "#]]
    .assert_eq(&to_text(&layout(&slip, Width::Mm80)));
}

#[test]
fn escpos_bytes_print_exactly_the_laid_out_text() {
    let slip = Slip::from_sale(&sale(), &StoreInfo::default(), true).unwrap();
    for width in [Width::Mm58, Width::Mm80] {
        let blocks = layout(&slip, width);
        for (model, page) in [
            (Model::EPSON_TM, CodePage::Cp857),
            (Model::EPSON_TM, CodePage::Cp1254),
            (Model::GENERIC_58, CodePage::Cp857),
            (Model::STAR, CodePage::Cp857),
        ] {
            let bytes = render(&blocks, &Setup::new(model, page)).unwrap();
            let printed = decode::printed_text_on(&bytes, model);
            assert_eq!(printed, to_text(&blocks), "{model:?} {page:?} {width:?}");
            for line in printed.lines() {
                assert!(line.chars().count() <= width.columns(), "{line:?} is wider than {width:?}");
            }
        }
    }
}

#[test]
fn a_page_the_model_lacks_is_a_clear_error() {
    let blocks = layout(&Slip::from_sale(&sale(), &StoreInfo::default(), false).unwrap(), Width::Mm58);
    let err = render(&blocks, &Setup::new(Model::STAR, CodePage::Cp1254)).unwrap_err();
    assert!(err.to_string().contains("has no code page"), "{err}");
    let mut setup = Setup::new(Model::STAR, CodePage::Cp1254);
    setup.page_number_override = Some(29);
    assert!(render(&blocks, &setup).is_ok());
}

#[test]
fn cut_and_drawer_commands() {
    let blocks = layout(&Slip::from_sale(&sale(), &StoreInfo::default(), false).unwrap(), Width::Mm58);
    let mut setup = Setup::new(Model::EPSON_TM, CodePage::Cp857);
    setup.open_drawer = true;
    let bytes = render(&blocks, &setup).unwrap();
    let (_, events) = decode::parse(&bytes, Model::EPSON_TM);
    assert_eq!(events.first(), Some(&decode::Event::Page(13)));
    assert!(events.contains(&decode::Event::Cut));
    assert_eq!(events.last(), Some(&decode::Event::Drawer));
    assert!(bytes.ends_with(&crate::escpos::DRAWER_KICK));
    // The 58 mm clone has no cutter: no cut command is sent.
    let bytes = render(&blocks, &Setup::new(Model::GENERIC_58, CodePage::Cp857)).unwrap();
    assert!(!decode::parse(&bytes, Model::GENERIC_58).1.contains(&decode::Event::Cut));
}
