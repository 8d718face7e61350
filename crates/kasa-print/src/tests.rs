//! Slip rendering tests: layout snapshots, the ESC/POS bytes read back, and the PDF and PNG slips.

use expect_test::expect;
use kasa_core::{
    Basket, CardSlip, Currency, Litres, Money, OrderStatus, Payment, PaymentKind, PumpOrder, Sale, SaleId, ShopItem,
};
use time::macros::datetime;

use crate::codepage::{CodePage, Model};
use crate::escpos::{Setup, render};
use crate::layout::{Block, Width, layout, to_text};
use crate::pdf::{Paper, render_pdf};
use crate::raster::render_png;
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

/// A German shop's cash sale with a fuel line, in euros.
fn german_sale() -> (Sale, StoreInfo) {
    let eur = |minor| Money::new(minor, Currency::EUR);
    let order = PumpOrder {
        order_id: "TXO-000002".into(),
        plate_number: "M-KS 4711".into(),
        pump_no: 2,
        nozzle_no: 1,
        product_code: "B7".into(),
        product_name: "Diesel B7".into(),
        litres: Litres::parse("41.250").unwrap(),
        unit_price: eur(169),
        amount: eur(6971),
        vat_rate_bp: 1900,
        status: OrderStatus::Open,
        created_at: datetime!(2026-11-21 09:00 UTC),
        lock: None,
        receipt: None,
    };
    let mut basket = Basket::for_order(&order);
    for (sku, name, price, quantity) in [
        ("4001", "Brötchen (Weizen)", 45, 6),
        ("4002", "Weißbrot groß", 329, 1),
        ("4003", "Käse Gouda, geräuchert, am Stück", 499, 1),
        ("4004", "Müsliriegel Haselnuß", 129, 3),
    ] {
        let item = ShopItem { sku: sku.into(), name: name.into(), unit_price: eur(price), vat_rate_bp: 700 };
        basket.add_item(item, quantity).unwrap();
    }
    let mut s =
        Sale::new(SaleId("7c1d2e3f-0000-4a5b-8c9d-00000000abcd".into()), basket, datetime!(2026-11-21 09:00 UTC));
    s.updated_at = datetime!(2026-11-21 09:12:05 UTC);
    let total = s.total().unwrap();
    s.payments.push(Payment {
        amount: eur(10_000),
        kind: PaymentKind::Cash { tendered: eur(10_000), change: eur(10_000 - total.minor) },
    });
    let store = StoreInfo {
        name: "BÄCKEREI & TANKSTELLE MÜLLER".into(),
        address: vec!["Königstraße 12".into(), "80331 München".into()],
        tax_id: "USt-IdNr. DE123456789".into(),
        footer: vec!["Vielen Dank für Ihren Einkauf!".into(), "Schöne Grüße, Ihr Team Müller".into()],
        utc_offset_minutes: 60,
        language: "en".into(),
    };
    (s, store)
}

/// A slip with a QR code, in Turkish.
fn turkish_slip() -> Slip {
    let mut slip = Slip::from_sale(&sale(), &StoreInfo::default(), true).unwrap();
    slip.qr = Some("https://kasa.example/s/0f3a9c1e-5b7d-4e21-9a55-3c2d1e0b9f77".into());
    slip
}

/// `<workspace>/test-output/print`, created.
fn output_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-output/print");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a poppler tool, failing the test with a hint when it is missing.
fn poppler(tool: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} could not be run ({e}); install poppler-utils"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The rows a PDF's text layer gives back: `pdftotext -layout` on the column grid (`-fixed`
/// with the slip's column width), page breaks and blank lines dropped, trailing spaces trimmed
/// and the page margin removed.
///
/// Without `-fixed`, pdftotext drops the space glyphs and guesses each gap from how runs of
/// words sit relative to the runs on other lines, so runs of spaces come back wider or narrower
/// than drawn (`Satış` a few columns right of where it is, centred lines shifted). Told the
/// pitch, it puts every character at its drawn column, which is what a slip is.
fn pdf_rows(pdf: &std::path::Path, column_width: f32) -> Vec<String> {
    let pitch = format!("{column_width}");
    let args = ["-layout", "-fixed", &pitch].map(std::ffi::OsStr::new);
    let text = poppler("pdftotext", &[&args[..], &[pdf.as_os_str(), "-".as_ref()]].concat());
    let text = String::from_utf8(text).unwrap().replace('\u{c}', "");
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let margin = lines.iter().map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    lines.iter().map(|l| l[margin..].to_string()).collect()
}

/// The rows `pdf_rows` should give for `blocks`. A big row's characters are two columns wide
/// while the text layer counts one per column, so a big row reads back with each word at its
/// printed column: leading spaces and the gaps between words doubled, the letters of a word
/// side by side. QR codes are drawings, not text, and are skipped.
fn expected_pdf_rows(blocks: &[Block]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in blocks {
        let Block::Text { text, big, .. } = b else { continue };
        let row = if *big {
            let mut row = String::new();
            let mut prev = ' ';
            for (i, c) in text.chars().enumerate() {
                if c != ' ' && prev == ' ' {
                    let column = 2 * i;
                    row.extend(std::iter::repeat_n(' ', column.saturating_sub(row.chars().count())));
                }
                if c != ' ' {
                    row.push(c);
                }
                prev = c;
            }
            row
        } else {
            text.clone()
        };
        let row = row.trim_end();
        if !row.is_empty() {
            rows.push(row.to_string());
        }
    }
    rows
}

/// Renders `blocks` as a PDF on `paper`, checks its text layer and its picture, and returns
/// the sizes with and without subset fonts.
fn check_pdf(name: &str, blocks: &[Block], paper: Paper) -> (usize, usize) {
    let dir = output_dir();
    let pdf = render_pdf(blocks, paper).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let path = dir.join(format!("{name}.pdf"));
    std::fs::write(&path, &pdf).unwrap();
    let columns = blocks.iter().find_map(|b| match b {
        Block::Text { text, big: false, .. } if text.starts_with("---") => Some(text.chars().count()),
        _ => None,
    });
    let got = pdf_rows(&path, crate::pdf::column_width(paper, columns.unwrap()));
    let want = expected_pdf_rows(blocks);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{name}: row {i} of the text layer");
    }
    assert_eq!(got.len(), want.len(), "{name}: rows in the text layer\n{got:#?}");

    // The first page as a picture, at 100 dpi.
    let prefix = dir.join(format!("{name}-pdf"));
    let args = ["-png", "-r", "100", "-singlefile"].map(std::ffi::OsStr::new);
    poppler("pdftoppm", &[&args[..], &[path.as_os_str(), prefix.as_os_str()]].concat());
    let png_path = prefix.with_extension("png");
    let png = std::fs::read(&png_path).unwrap_or_else(|e| panic!("{}: {e}", png_path.display()));
    assert!(png.len() > 5_000, "{name}: the page picture is only {} bytes", png.len());
    let (width, _, pixels) = decode_png(&png);
    let expected_width = match paper {
        Paper::Roll80 => 315,
        Paper::A4 => 827,
    };
    assert!(width.abs_diff(expected_width) <= 1, "{name}: page width {width} at 100 dpi");
    let dark = pixels.iter().filter(|&&v| v < 128).count();
    assert!(dark * 100 > pixels.len(), "{name}: the page picture is nearly blank");

    let full = crate::pdf::render(blocks, paper, false).unwrap();
    (pdf.len(), full.len())
}

/// Width, height and one byte per pixel (the first channel) of a PNG.
fn decode_png(png: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let channels = frame.color_type.samples();
    let pixels = buf[..frame.buffer_size()].iter().step_by(channels).copied().collect();
    (frame.width, frame.height, pixels)
}

/// Checks that the picture shows the QR code of `data` module for module: `(x, y)` is the
/// symbol's top left corner in pixels, `module` a module's side.
fn assert_qr_drawn(pixels: &[u8], width: u32, (x, y): (f32, f32), module: f32, data: &str) {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M).unwrap();
    let n = code.width();
    for (i, color) in code.to_colors().into_iter().enumerate() {
        let px = (x + ((i % n) as f32 + 0.5) * module) as u32;
        let py = (y + ((i / n) as f32 + 0.5) * module) as u32;
        let dark = pixels[(py * width + px) as usize] < 128;
        assert_eq!(dark, color == qrcode::Color::Dark, "module ({}, {}) of the QR code", i % n, i / n);
    }
}

#[test]
fn pdf_slips_carry_the_laid_out_rows_as_text() {
    let turkish = turkish_slip();
    let (sale, store) = german_sale();
    let german = Slip::from_sale(&sale, &store, false).unwrap();
    let mut sizes = Vec::new();
    for (name, blocks, paper) in [
        ("slip-tr-80mm-roll", layout(&turkish, Width::Mm80), Paper::Roll80),
        ("slip-tr-80mm-a4", layout(&turkish, Width::Mm80), Paper::A4),
        ("slip-de-58mm-a4", layout(&german, Width::Mm58), Paper::A4),
        ("slip-de-80mm-roll", layout(&german, Width::Mm80), Paper::Roll80),
    ] {
        let (subset, full) = check_pdf(name, &blocks, paper);
        println!("{name}: {subset} bytes with subset fonts, {full} with whole fonts");
        assert!(subset < 40_000, "{name}: {subset} bytes");
        assert!(subset * 5 < full, "{name}: subsetting saved little ({subset} of {full} bytes)");
        sizes.push(subset);
    }
    assert!(!sizes.is_empty());

    // The QR code is drawn module for module: at 406 dpi a printer dot is two pixels.
    let blocks = layout(&turkish, Width::Mm80);
    let path = output_dir().join("slip-tr-80mm-roll.pdf");
    let prefix = output_dir().join("slip-tr-80mm-roll-406dpi");
    let args = ["-png", "-r", "406", "-singlefile"].map(std::ffi::OsStr::new);
    poppler("pdftoppm", &[&args[..], &[path.as_os_str(), prefix.as_os_str()]].concat());
    let (width, _, pixels) = decode_png(&std::fs::read(prefix.with_extension("png")).unwrap());
    let sheet = crate::sheet::place(&blocks, 48);
    let (top, q) = sheet
        .rows
        .iter()
        .find_map(|r| match &r.mark {
            crate::sheet::Mark::Qr(q) => Some((r.top, q)),
            _ => None,
        })
        .unwrap();
    // The roll has 4 mm margins above and to each side of the 72 mm of a 48-column slip.
    let left = (width as f32 - 576.0 * 2.0) / 2.0;
    let origin = (left + (q.inset() * 2) as f32, 4.0 * 406.0 / 25.4 + ((top + q.inset()) * 2) as f32);
    assert_qr_drawn(&pixels, width, origin, (q.module_dots * 2) as f32, turkish.qr.as_deref().unwrap());
}

#[test]
fn a_long_slip_continues_on_further_a4_pages() {
    let (mut sale, store) = german_sale();
    for i in 0..60 {
        let item = ShopItem {
            sku: format!("9{i:03}"),
            name: format!("Artikel Nr. {i} Größe {}", ["S", "M", "L"][i % 3]),
            unit_price: Money::new(100 + i as i64, Currency::EUR),
            vat_rate_bp: 1900,
        };
        sale.basket.add_item(item, 1 + (i as u32 % 2)).unwrap();
    }
    let blocks = layout(&Slip::from_sale(&sale, &store, false).unwrap(), Width::Mm80);
    check_pdf("slip-de-long-a4", &blocks, Paper::A4);
    let path = output_dir().join("slip-de-long-a4.pdf");
    let text = poppler("pdftotext", &["-layout".as_ref(), path.as_os_str(), "-".as_ref()]);
    // pdftotext ends every page with a form feed.
    let pages = text.iter().filter(|&&b| b == 0x0C).count();
    assert!(pages >= 3, "{} rows on {pages} pages", blocks.len());
}

#[test]
fn png_slips_look_like_the_printed_rows() {
    let turkish = turkish_slip();
    let (sale, store) = german_sale();
    let german = Slip::from_sale(&sale, &store, false).unwrap();
    for (name, slip, width) in [
        ("slip-tr-80mm", &turkish, Width::Mm80),
        ("slip-tr-58mm", &turkish, Width::Mm58),
        ("slip-de-58mm", &german, Width::Mm58),
    ] {
        let blocks = layout(slip, width);
        let png = render_png(&blocks, width);
        std::fs::write(output_dir().join(format!("{name}.png")), &png).unwrap();
        let (w, h, pixels) = decode_png(&png);
        assert_eq!(w as usize, width.columns() * 12, "{name}");
        // Rows are 30 dots, big rows 48, a QR code its modules (5 dots) and a 4-module border.
        let mut bands = Vec::new();
        let mut top = 0;
        for b in &blocks {
            let height = match b {
                Block::Text { big: true, .. } => 48,
                Block::Text { .. } => 30,
                Block::Qr(data) => {
                    let modules =
                        qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M).unwrap().width();
                    (modules as u32 + 8) * 5
                }
            };
            bands.push((b, top, height));
            top += height;
        }
        assert_eq!(h, top, "{name}: picture height");
        let dark_in = |top: u32, height: u32| {
            pixels[(top * w) as usize..((top + height) * w) as usize].iter().filter(|&&p| p == 0).count()
        };
        for (b, top, height) in bands {
            let dark = dark_in(top, height);
            match b {
                Block::Text { text, .. } if text.trim().is_empty() => assert_eq!(dark, 0, "{name}: blank row"),
                Block::Text { text, .. } => assert!(dark > 4 * text.trim().chars().count(), "{name}: {text:?}"),
                Block::Qr(data) => {
                    assert!(dark > 2000, "{name}: QR code");
                    assert_qr_drawn(&pixels, w, (20.0, (top + 20) as f32), 5.0, data);
                }
            }
        }
        assert!(pixels.iter().all(|&p| p == 0 || p == 255), "{name}: only black and white dots");
    }
}

#[test]
fn bold_rows_print_bolder() {
    let row = |bold| Block::Text { text: "TOPLAM 1.401,70 TRY".into(), bold, big: false };
    let (w, _, pixels) = decode_png(&render_png(&[row(false), row(true)], Width::Mm80));
    let dark = |r: usize| pixels[r * 30 * w as usize..(r + 1) * 30 * w as usize].iter().filter(|&&p| p == 0).count();
    assert!(dark(1) > dark(0) * 5 / 4, "bold {} vs regular {}", dark(1), dark(0));
}

#[test]
fn decoded_escpos_gives_back_the_laid_out_blocks() {
    let slip = turkish_slip();
    let (sale, store) = german_sale();
    let german = Slip::from_sale(&sale, &store, true).unwrap();
    for width in [Width::Mm58, Width::Mm80] {
        for (model, page) in [
            (Model::EPSON_TM, CodePage::Cp857),
            (Model::EPSON_TM, CodePage::Cp1254),
            (Model::GENERIC_58, CodePage::Cp857),
            (Model::STAR, CodePage::Cp857),
        ] {
            let blocks = layout(&slip, width);
            assert!(blocks.iter().any(|b| matches!(b, Block::Text { big: true, .. })));
            assert!(blocks.iter().any(|b| matches!(b, Block::Qr(_))));
            let bytes = render(&blocks, &Setup::new(model, page)).unwrap();
            assert_eq!(decode::blocks(&bytes, model), blocks, "{model:?} {page:?} {width:?}");
        }
        // German prints exactly on a Western page.
        let blocks = layout(&german, width);
        let bytes = render(&blocks, &Setup::new(Model::EPSON_TM, CodePage::Cp858)).unwrap();
        assert_eq!(decode::blocks(&bytes, Model::EPSON_TM), blocks, "German {width:?}");
    }
}

/// Bytes as a hex dump, 16 to a row with the offset, for snapshots.
fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let h: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}: {}\n", i * 16, h.join(" "))
        })
        .collect()
}

#[test]
fn german_slip_58mm_with_long_names_prints_in_cp858() {
    let (sale, store) = german_sale();
    let slip = Slip::from_sale(&sale, &store, false).unwrap();
    let blocks = layout(&slip, Width::Mm58);
    let bytes = render(&blocks, &Setup::new(Model::EPSON_TM, CodePage::Cp858)).unwrap();
    let printed = decode::printed_text_on(&bytes, Model::EPSON_TM);
    expect![[r#"
           BÄCKEREI &
           TANKSTELLE
             MÜLLER
                 Königstraße 12
                 80331 München
             USt-IdNr. DE123456789
        --------------------------------
        Date 21.11.2026 10:12
                           Sale 0000abcd
        --------------------------------
        P2 Diesel B7
          41,250 L x 1,69  M-KS 4711
                                   69,71
        Brötchen (Weizen)
          6 x 0,45                  2,70
        Weißbrot groß               3,29
        Käse Gouda, geräuchert, am Stück
                                    4,99
        Müsliriegel Haselnuß
          3 x 1,29                  3,87
        --------------------------------
        TOTAL                  84,56 EUR
        VAT %7                      0,97
        VAT %19                    11,13
        --------------------------------
        CASH                      100,00
        CHANGE                     15,44
        --------------------------------
         Vielen Dank für Ihren Einkauf!
         Schöne Grüße, Ihr Team Müller
    "#]]
    .assert_eq(&printed);
    for line in printed.lines() {
        assert!(line.chars().count() <= 32, "{line:?}");
    }
    assert_eq!(printed, to_text(&blocks), "every character of the German text exists in CP858");
}

#[test]
fn turkish_shop_slip_bytes_snapshot() {
    let mut basket = Basket::new(Currency::TRY);
    basket
        .add_item(ShopItem { sku: "1".into(), name: "Şeker, Çay".into(), unit_price: tl(4_550), vat_rate_bp: 1000 }, 1)
        .unwrap();
    let mut s =
        Sale::new(SaleId("00000000-0000-4000-8000-0000000000a1".into()), basket, datetime!(2026-11-21 08:00 UTC));
    s.updated_at = datetime!(2026-11-21 08:00 UTC);
    s.payments.push(Payment { amount: tl(4_550), kind: PaymentKind::Cash { tendered: tl(5_000), change: tl(450) } });
    let store =
        StoreInfo { address: vec!["İzmir".into()], tax_id: "VKN 1".into(), footer: vec![], ..StoreInfo::default() };
    let blocks = layout(&Slip::from_sale(&s, &store, false).unwrap(), Width::Mm58);
    let bytes = render(&blocks, &Setup::new(Model::EPSON_TM, CodePage::Cp857)).unwrap();
    expect![[r#"
        0000: 1b 40 1b 74 0d 1b 45 01 1d 21 11 20 20 4b 41 53
        0010: 41 20 50 45 54 52 4f 4c 0a 1d 21 00 1b 45 00 20
        0020: 20 20 20 20 20 20 20 20 20 20 20 20 98 7a 6d 69
        0030: 72 0a 20 20 20 20 20 20 20 20 20 20 20 20 20 56
        0040: 4b 4e 20 31 0a 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d
        0050: 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d
        0060: 2d 2d 2d 2d 2d 0a 54 61 72 69 68 20 32 31 2e 31
        0070: 31 2e 32 30 32 36 20 31 31 3a 30 30 0a 20 20 20
        0080: 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 53
        0090: 61 74 8d 9f 20 30 30 30 30 30 30 61 31 0a 2d 2d
        00a0: 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d
        00b0: 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 0a 9e
        00c0: 65 6b 65 72 2c 20 80 61 79 20 20 20 20 20 20 20
        00d0: 20 20 20 20 20 20 20 20 20 20 34 35 2c 35 30 0a
        00e0: 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d
        00f0: 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d
        0100: 0a 1b 45 01 54 4f 50 4c 41 4d 20 20 20 20 20 20
        0110: 20 20 20 20 20 20 20 20 20 20 20 34 35 2c 35 30
        0120: 20 54 52 59 0a 1b 45 00 4b 44 56 20 25 31 30 20
        0130: 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20
        0140: 20 20 20 20 34 2c 31 34 0a 2d 2d 2d 2d 2d 2d 2d
        0150: 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d 2d
        0160: 2d 2d 2d 2d 2d 2d 2d 2d 2d 0a 4e 41 4b 98 54 20
        0170: 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20
        0180: 20 20 20 20 20 35 30 2c 30 30 0a 50 41 52 41 20
        0190: 9a 53 54 9a 20 20 20 20 20 20 20 20 20 20 20 20
        01a0: 20 20 20 20 20 20 20 34 2c 35 30 0a 1b 64 03 1d
        01b0: 56 41 01
    "#]]
    .assert_eq(&hex(&bytes));
}

#[test]
fn many_lines_stay_within_the_paper_on_every_width() {
    let mut basket = Basket::new(Currency::TRY);
    for i in 0..40 {
        let name = format!("Ürün {i}: {}", "çok uzun bir ürün adı ".repeat(i % 4));
        let item = ShopItem { sku: format!("{i}"), name, unit_price: tl(100 + i as i64), vat_rate_bp: 2000 };
        basket.add_item(item, 1 + (i % 3) as u32).unwrap();
    }
    let mut s = Sale::new(SaleId("many".into()), basket, datetime!(2026-11-21 08:00 UTC));
    let total = s.total().unwrap();
    s.payments.push(Payment { amount: total, kind: PaymentKind::Cash { tendered: total, change: tl(0) } });
    for width in [Width::Mm58, Width::Mm80] {
        let blocks = layout(&Slip::from_sale(&s, &StoreInfo::default(), false).unwrap(), width);
        let bytes = render(&blocks, &Setup::new(Model::GENERIC_58, CodePage::Cp1254)).unwrap();
        let printed = decode::printed_text_on(&bytes, Model::GENERIC_58);
        assert_eq!(printed, to_text(&blocks));
        assert!(printed.lines().count() > 80, "{width:?}");
        assert!(printed.lines().all(|l| l.chars().count() <= width.columns()), "{width:?}");
        assert!(printed.contains("Ürün 39"));
    }
}

#[test]
fn a_signed_receipt_prints_its_signature_and_qr_and_a_pending_one_says_so() {
    use kasa_core::{FiscalReceipt, FiscalSignature, FiscalState, SignatureLine};
    let mut s = sale();
    s.fiscalize = true;
    s.fiscal.push(FiscalReceipt {
        reference: s.id.0.clone(),
        refund: None,
        state: FiscalState::Pending,
        signature: None,
    });
    let pending = Slip::from_sale(&s, &StoreInfo::default(), false).unwrap();
    let text = to_text(&layout(&pending, Width::Mm80));
    assert!(text.contains("*** İMZA BEKLENİYOR ***") && text.contains("yeniden basılabilir"), "{text}");
    assert!(pending.qr.is_none(), "no QR code before the signature");

    let qr = "TR-SCU-7654321_ft1A_2026-11-21T12:04:31.000Z_1401.70_9f2c4e01";
    s.fiscal[0].state = FiscalState::Signed;
    s.fiscal[0].signature = Some(FiscalSignature {
        receipt_id: "ft1A".into(),
        cashbox: "TR-SCU-7654321".into(),
        moment: "2026-11-21T12:04:31.000Z".into(),
        lines: vec![
            SignatureLine { caption: "RT Device".into(), data: "RT-12345678".into() },
            SignatureLine { caption: "Signature".into(), data: "9f2c4e01".into() },
        ],
        qr: Some(qr.into()),
    });
    let signed = Slip::from_sale(&s, &StoreInfo::default(), false).unwrap();
    for width in [Width::Mm58, Width::Mm80] {
        let blocks = layout(&signed, width);
        let text = to_text(&blocks);
        assert!(text.contains("Mali fiş") && text.contains("ft1A"), "{text}");
        assert!(text.contains("RT Device: RT-12345678") && text.contains("Signature: 9f2c4e01"), "{text}");
        assert!(!text.contains("İMZA BEKLENİYOR"), "{text}");
        // The signature's QR code reads back from the printer's bytes.
        let bytes = render(&blocks, &Setup::new(Model::EPSON_TM, CodePage::Cp857)).unwrap();
        let back = decode::blocks(&bytes, Model::EPSON_TM);
        assert!(back.contains(&Block::Qr(qr.into())), "{width:?}");
    }
    // And the PDF carries the same rows and draws the code.
    let blocks = layout(&signed, Width::Mm80);
    check_pdf("slip-fiscal-80mm-roll", &blocks, Paper::Roll80);
}
