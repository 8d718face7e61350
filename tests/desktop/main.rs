//! End-to-end tests of the real desktop app: the built `kasa-desktop` in a window under Xvfb,
//! driven through WebDriver (tauri-driver in front of WebKitWebDriver).
//!
//! They need a display and `tauri-driver` on PATH, so they are ignored by a plain `cargo test`;
//! `./scripts/test` runs them with `--ignored` inside `xvfb-run` and a private D-Bus session.

mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

use webdriver::{Driver, Session};

fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-output/desktop");
    std::fs::create_dir_all(&dir).expect("test output folder");
    dir
}

#[tokio::test]
#[ignore = "needs a display and tauri-driver: run through ./scripts/test"]
async fn sells_a_pump_order_by_card_in_the_window() {
    let data = tempfile::tempdir().unwrap();
    let driver = Driver::start(env!("CARGO_BIN_EXE_kasa-desktop"), data.path()).await;
    let s: Session = driver.session().await;

    // The demo register shows pump orders from its sandbox.
    let card = s.wait_for("[data-testid=order-card][data-status=Open]", Duration::from_secs(30)).await;
    let order_id = s.attribute(&card, "data-order-id").await;
    let plate = s.text(&s.find_within(&card, ".plate").await).await;
    assert!(s.exists("[data-testid=status-online]").await, "the status bar shows online");
    s.click(&card).await;

    // Order detail, then pay by card.
    let total = s.text(&s.wait_for("[data-testid=total]", Duration::from_secs(10)).await).await;
    s.click(&s.wait_for("[data-testid=pay-card]", Duration::from_secs(5)).await).await;
    s.wait_for("[data-testid=paying]", Duration::from_secs(5)).await;

    // The card is approved at the simulated terminal; the Done screen shows the slip.
    let done = s.wait_for("[data-testid=done]", Duration::from_secs(30)).await;
    assert!(s.text(&done).await.contains("Paid"));
    let receipt = s.wait_for("[data-testid=pump-receipt]", Duration::from_secs(20)).await;
    assert!(s.text(&receipt).await.contains("fiscal no"));
    // Demo mode fiscalizes: the receipt is signed by the sandbox's middleware.
    let signed = s.wait_for("[data-testid=fiscal-signed]", Duration::from_secs(20)).await;
    assert!(s.text(&signed).await.contains("Fiscal receipt ft"), "the done screen names the signed receipt");
    let preview = s.text(&s.find("[data-testid=slip-preview]").await).await;
    assert!(preview.contains("Mali fiş"), "the slip carries the fiscal signature: {preview}");
    assert!(preview.contains("KART VISA ************0059"), "{preview}");
    assert!(preview.contains(&plate), "slip names the plate {plate}: {preview}");
    let total_digits = total.split_whitespace().next().unwrap().to_string();
    assert!(preview.contains(&total_digits), "slip shows the total {total_digits}: {preview}");

    let png = s.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(output_dir().join("card-sale-done.png"), &png).unwrap();

    // The virtual printer received exactly that slip.
    let spool = data.path().join("printer/0001.escpos");
    let mut bytes = Vec::new();
    for _ in 0..100 {
        if let Ok(b) = std::fs::read(&spool) {
            bytes = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!bytes.is_empty(), "the virtual printer received the slip ({})", spool.display());
    assert_eq!(&bytes[..2], b"\x1b@", "the job starts by initialising the printer");
    let printed = kasa_print::decode::printed_text(&bytes);
    std::fs::write(output_dir().join("card-sale-slip.txt"), &printed).unwrap();
    let lines = |t: &str| {
        t.lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .map(str::trim)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(&printed), lines(&preview), "printed bytes decode to the slip shown on screen");
    assert!(printed.contains(&order_id[order_id.len() - 1..]) || printed.contains("TOPLAM"));

    s.close().await;
}

#[tokio::test]
#[ignore = "needs a display and tauri-driver: run through ./scripts/test"]
async fn a_settle_qr_payment_is_shown_as_a_qr_code_and_completed_by_the_customer() {
    let data = tempfile::tempdir().unwrap();
    let driver = Driver::start(env!("CARGO_BIN_EXE_kasa-desktop"), data.path()).await;
    let s: Session = driver.session().await;

    let card = s.wait_for("[data-testid=order-card][data-status=Open]", Duration::from_secs(30)).await;
    s.click(&card).await;
    s.click(&s.wait_for("[data-testid=pay-settle]", Duration::from_secs(10)).await).await;

    // The QR code the customer scans carries Settle's shortlink and this payment's id.
    let qr = s.wait_for("[data-testid=qr]", Duration::from_secs(10)).await;
    let text = s.attribute(&qr, "data-qr").await;
    assert!(text.starts_with("http://settle.eu/s/kAsA7d/"), "{text}");
    assert!(s.exists("[data-testid=qr] svg").await, "the QR code is drawn");
    let png = s.screenshot().await;
    std::fs::write(output_dir().join("settle-qr.png"), &png).unwrap();

    // The sandbox's customer scans and approves from the demo panel.
    s.click(&s.find("[data-testid=sandbox-scan]").await).await;
    let started = std::time::Instant::now();
    while !s.exists("[data-testid=done]").await {
        assert!(started.elapsed() < Duration::from_secs(30), "the Settle payment did not complete");
        if let Some(approve) = s.try_find_pub("[data-testid=sandbox-approve]").await {
            s.click(&approve).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let preview = s.text(&s.find("[data-testid=slip-preview]").await).await;
    assert!(preview.contains("SETTLE"), "{preview}");
    std::fs::write(output_dir().join("settle-done.png"), s.screenshot().await).unwrap();
    s.close().await;
}

#[tokio::test]
#[ignore = "needs a display and tauri-driver: run through ./scripts/test"]
async fn a_second_launch_brings_the_running_register_forward_and_starts_no_engine() {
    use kasa_engine::owner::{Owner, owner};
    let data = tempfile::tempdir().unwrap();
    let app = env!("CARGO_BIN_EXE_kasa-desktop");
    let driver = Driver::start(app, data.path()).await;
    let s: Session = driver.session().await;
    s.wait_for("[data-testid=order-card][data-status=Open]", Duration::from_secs(30)).await;
    let first = match owner(data.path()) {
        Owner::Running { pid: Some(pid) } => pid,
        other => panic!("the running register holds its data directory: {other:?}"),
    };
    assert_eq!(s.window_handles().await.len(), 1);

    // Launched again, as a cashier double-tapping the icon would: it hands over and exits.
    let started = std::time::Instant::now();
    let mut second = std::process::Command::new(app)
        .env("KASA_DATA_DIR", data.path())
        .env("NO_AT_BRIDGE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = second.kill();
            panic!("the second launch kept running");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "the second launch exits cleanly: {status:?} {err}");
    assert!(!err.contains("could not start"), "the second launch never tried to start a register: {err}");

    // The running register heard of it and says so on its screen.
    let told = s.wait_for("[data-testid=relaunched]", Duration::from_secs(10)).await;
    assert!(s.text(&told).await.contains("already open"));
    // One window, one engine: one app process is left, and it still holds the directory.
    let apps: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.ends_with("kasa-desktop")))
        .collect();
    assert_eq!(apps, vec![first], "one register process");
    assert_eq!(s.window_handles().await.len(), 1);
    assert_eq!(owner(data.path()), Owner::Running { pid: Some(first) });
    let card = s.wait_for("[data-testid=order-card][data-status=Open]", Duration::from_secs(10)).await;
    s.click(&card).await;
    s.wait_for("[data-testid=pay-card]", Duration::from_secs(10)).await;
    std::fs::write(output_dir().join("single-instance.png"), s.screenshot().await).unwrap();
    s.close().await;
}

#[tokio::test]
#[ignore = "needs a display and tauri-driver: run through ./scripts/test"]
async fn the_manager_finds_a_sale_by_plate_opens_it_runs_an_x_report_and_exports_it() {
    let data = tempfile::tempdir().unwrap();
    let driver = Driver::start(env!("CARGO_BIN_EXE_kasa-desktop"), data.path()).await;
    let s: Session = driver.session().await;

    // A card sale of a pump order, so the journal has a plate to find.
    let card = s.wait_for("[data-testid=order-card][data-status=Open]", Duration::from_secs(30)).await;
    let plate = s.text(&s.find_within(&card, ".plate").await).await;
    s.click(&card).await;
    s.click(&s.wait_for("[data-testid=pay-card]", Duration::from_secs(10)).await).await;
    s.wait_for("[data-testid=done]", Duration::from_secs(30)).await;

    // The manager logs in with the demo register's PIN.
    s.click(&s.find("[data-testid=manager-open]").await).await;
    let pin = s.wait_for("[data-testid=pin]", Duration::from_secs(10)).await;
    s.type_text(&pin, "246810").await;
    s.click(&s.find("[data-testid=pin-ok]").await).await;

    // Filters the journal by the plate, typed in lower case.
    let filter = s.wait_for("[data-testid=filter-plate]", Duration::from_secs(10)).await;
    s.type_text(&filter, &plate.to_lowercase()).await;
    s.click(&s.find("[data-testid=search-go]").await).await;
    let row = s.wait_for("[data-testid=journal-row]", Duration::from_secs(10)).await;
    assert!(s.text(&row).await.contains(&plate), "the row shows the plate {plate}");
    std::fs::write(output_dir().join("manager-journal-search.png"), s.screenshot().await).unwrap();

    // Opens the entry: its slip picture and its journal.
    s.click(&s.find_within(&row, "[data-testid=journal-open]").await).await;
    let detail = s.wait_for("[data-testid=journal-detail]", Duration::from_secs(10)).await;
    s.wait_for("[data-testid=detail-slip]", Duration::from_secs(10)).await;
    let text = s.text(&detail).await;
    assert!(text.contains("payment_approved") && text.contains("card_sale"), "{text}");
    std::fs::write(output_dir().join("manager-journal-detail.png"), s.screenshot().await).unwrap();

    // Runs an X report: the one card sale.
    s.click(&s.find("[data-testid=tab-reports]").await).await;
    s.click(&s.wait_for("[data-testid=report-x]", Duration::from_secs(10)).await).await;
    let report = s.wait_for("[data-testid=report]", Duration::from_secs(10)).await;
    let text = s.text(&report).await;
    assert!(text.contains("X report") && text.contains("card"), "{text}");
    std::fs::write(output_dir().join("manager-x-report.png"), s.screenshot().await).unwrap();

    // Exports it as a PDF into the data directory.
    s.click(&s.find("[data-testid=report-pdf]").await).await;
    let saved = s.text(&s.wait_for("[data-testid=report-pdf-path]", Duration::from_secs(10)).await).await;
    let path = std::path::PathBuf::from(saved.trim_start_matches("Saved as ").trim());
    assert!(path.starts_with(data.path()), "{}", path.display());
    let pdf = std::fs::read(&path).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    std::fs::write(output_dir().join("manager-x-report.pdf"), &pdf).unwrap();
    s.close().await;
}

/// PIN guesses sent through the app's own IPC (the commands the screens call), from the page,
/// across a restart of the app: the lockout, kept in the database, answers almost none of them.
#[tokio::test]
#[ignore = "needs a display and tauri-driver: run through ./scripts/test"]
async fn pin_guesses_through_the_windows_ipc_are_stopped_by_the_lockout_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut answered = Vec::new();
    for launch in 0..2u32 {
        let driver = Driver::start(env!("CARGO_BIN_EXE_kasa-desktop"), data.path()).await;
        let s: Session = driver.session().await;
        s.wait_for("[data-testid=order-card]", Duration::from_secs(30)).await;
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async () => {{
               let answered = 0, locked = 0; const other = [];
               for (let i = 0; i < 5000; i++) {{
                 try {{
                   await window.__TAURI_INTERNALS__.invoke('manager_login', {{ pin: String({} + i) }});
                   other.push('a guess opened the area');
                 }} catch (e) {{
                   const m = (e && e.message) || String(e);
                   if (m.startsWith('Wrong PIN.')) answered++;
                   else if (m.startsWith('Too many wrong PINs')) locked++;
                   else other.push(m);
                 }}
               }}
               done({{ answered, locked, other: other.slice(0, 3) }});
             }})();",
            100_000 + launch * 5000
        );
        let r = s.execute_async(&script, Duration::from_secs(600)).await;
        assert_eq!(r["other"], serde_json::json!([]), "every guess was refused: {r}");
        assert_eq!(r["answered"].as_u64().unwrap() + r["locked"].as_u64().unwrap(), 5000, "{r}");
        answered.push(r["answered"].as_u64().unwrap());
        if launch == 1 {
            // The manager sees the lockout on the screen too.
            s.click(&s.find("[data-testid=manager-open]").await).await;
            let pin = s.wait_for("[data-testid=pin]", Duration::from_secs(10)).await;
            s.type_text(&pin, "246810").await;
            s.click(&s.find("[data-testid=pin-ok]").await).await;
            let alert = s.wait_for("[role=alert]", Duration::from_secs(10)).await;
            assert!(s.text(&alert).await.contains("Too many wrong PINs"), "even the right PIN waits");
            std::fs::write(output_dir().join("manager-locked.png"), s.screenshot().await).unwrap();
        }
        s.close().await;
        drop(driver);
    }
    assert_eq!(answered[0], 5, "five guesses checked before the first lockout");
    assert!(answered.iter().sum::<u64>() <= 10, "of 10,000 guesses at most ten were checked: {answered:?}");
}
