//! The `kasa` binary, run as a user would.

use std::process::Command;

fn kasa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kasa"))
}

#[test]
fn demo_sells_by_card_and_cash_headlessly() {
    let dir = tempfile::tempdir().unwrap();
    let out = kasa().args(["demo", "--sales", "2", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("by card"), "{stdout}");
    assert!(stdout.contains("by cash"), "{stdout}");
    assert!(stdout.contains("KART VISA"), "{stdout}");
    assert!(stdout.contains("NAKİT"), "{stdout}");
    assert!(stdout.contains("virtual printer received 2 slip(s)"), "{stdout}");
    assert!(stdout.contains("fiscal signature QR codes read back from the slips: 2 of 2"), "{stdout}");
    assert!(stdout.contains("intact"), "{stdout}");
    assert!(dir.path().join("kasa.db").exists());
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.toml");
    std::fs::write(&path, "data_dir = \"x\"\n[tokenx]\nbase_url = \"http://example.com\"\n").unwrap();
    let out = kasa().arg("orders").arg("--config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: the configuration"), "{err}");
    assert!(err.contains("missing field"), "{err}");

    let out = kasa().arg("orders").env_remove("KASA_CONFIG").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --config FILE"));
}

#[test]
fn journal_verify_reports_an_intact_journal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = kasa().args(["demo", "--sales", "1", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success());
    let cfg = kasa_cfg(dir.path(), &data);
    // The demo's journal is sealed with the sandbox's (public) key.
    let verify = || kasa().args(["journal", "verify", "--sandbox-credentials", "--config"]).arg(&cfg).output().unwrap();
    let out = verify();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("journal intact"));

    // Someone with the file edits an entry: found, at that entry, and named.
    let c = rusqlite::Connection::open(data.join("kasa.db")).unwrap();
    c.execute_batch("DROP TRIGGER journal_no_update; UPDATE journal SET data = '{}' WHERE seq = 3;").unwrap();
    drop(c);
    let out = verify();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("journal broken at entry 3 (edited)"), "{err}");
}

fn kasa_cfg(dir: &std::path::Path, data: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kasa.toml");
    let text = format!(
        "data_dir = {:?}\n[tokenx]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nterminal_id = \"VT-0001\"\n\
         [finix]\nbase_url = \"http://127.0.0.1:9\"\nusername = \"u\"\nmerchant_id = \"m\"\ndevice_id = \"d\"\n",
        data.display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Stores both secrets with `kasa secrets set` (value on stdin), then sells against a sandbox
/// with the register reading them back from the OS keyring. Needs an unlocked Secret Service:
/// `./scripts/test` runs it inside a private D-Bus session with gnome-keyring.
#[test]
#[ignore = "needs an unlocked OS keyring: run through ./scripts/test"]
fn secrets_round_trip_through_the_os_keyring() {
    use std::io::Write;
    use std::process::Stdio;
    // Before the secrets are stored, the register says which one is missing and how to set it.
    let dir0 = tempfile::tempdir().unwrap();
    let out = kasa().args(["orders", "--config"]).arg(kasa_cfg(dir0.path(), &dir0.path().join("d"))).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("secret 'tokenx.client_secret' is not set; set it with: kasa secrets set"), "{err}");

    for (name, value) in [("tokenx.client_secret", "demo-secret"), ("finix.password", "demo-finix-password")] {
        let mut child = kasa().args(["secrets", "set", name]).stdin(Stdio::piped()).output_piped();
        child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("stored {name} in the OS keyring"));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kasa.toml");
    let mut sim = kasa()
        .args(["sim", "--order-every", "0", "--seconds", "60", "--write-config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if cfg.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = kasa().args(["orders", "--config"]).arg(&cfg).output().unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("from the cloud\nORDER"), "{stdout}");
    assert!(stdout.lines().count() >= 6, "the sandbox's orders are listed: {stdout}");

    let err = kasa().args(["secrets", "set", "nope"]).stdin(Stdio::null()).output().unwrap();
    assert!(!err.status.success());
}

trait OutputPiped {
    fn output_piped(&mut self) -> std::process::Child;
}

impl OutputPiped for Command {
    fn output_piped(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }
}

/// `kasa sim` runs the sandbox on its own; `kasa orders`, `sale`, `status` and `queue` work
/// against it with the sandbox's public demo credentials. The commands that only look never
/// create a database.
#[test]
fn status_orders_sale_and_queue_against_a_standalone_sandbox() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kasa.toml");
    let mut sim = kasa()
        .args(["sim", "--order-every", "0", "--seconds", "60", "--write-config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if cfg.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let run = |args: &[&str]| {
        let out = kasa().args(args).arg("--config").arg(&cfg).arg("--sandbox-credentials").output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Before any register ran here there is nothing to show, and nothing is created.
    let (ok, _, err) = run(&["status"]);
    assert!(!ok);
    assert!(err.contains("there is no Kasa database at") && err.contains("a register creates it"), "{err}");
    for look in [&["journal", "verify"][..], &["journal", "export"], &["journal", "report", "x"]] {
        let (ok, _, err) = run(look);
        assert!(!ok, "{look:?}");
        assert!(err.contains("there is no Kasa database at"), "{look:?}: {err}");
    }
    assert!(!dir.path().join("kasa-data").join("kasa.db").exists(), "a look creates no database");
    assert!(!dir.path().join("kasa-data").exists(), "nor its directory");
    // With no register running, the orders come from the cloud itself.
    let (ok, orders, err) = run(&["orders"]);
    assert!(ok, "{err}");
    assert!(orders.starts_with("from the cloud\n"), "{orders}");
    let first = orders.lines().nth(2).unwrap().split_whitespace().next().unwrap().to_string();
    let (ok, sale, err) = run(&["sale", "--order", &first, "--pay", "cash", "--tendered", "5000"]);
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(ok, "{sale}{err}");
    assert!(sale.contains("Completed") && sale.contains("change:"), "{sale}");
    let (ok, status, err) = run(&["status"]);
    assert!(ok, "{err}");
    assert!(status.starts_with("no register is running on this data directory"), "{status}");
    assert!(status.contains("queue 0 pending, 0 parked"), "{status}");
    // With the sandbox gone the queue is still read from the database.
    let (ok, queue, err) = run(&["queue", "list"]);
    assert!(ok, "{err}");
    assert!(queue.trim().ends_with("the queue is empty"), "{queue}");
}

/// The commands that only look run beside a register that is in the middle of a card sale
/// (the cardholder is at the terminal until the test lets the card be read):
/// they read its database, say that it runs, and leave its sale alone; the ones that would
/// change something refuse and say what to do. The sale completes paid, with one charge.
#[test]
fn reading_commands_beside_a_register_mid_card_sale_leave_it_alone() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut c = kasa_sim::SandboxConfig::default();
    c.tokenx.initial_orders = 0;
    // The cardholder stands at the terminal until the test lets the card be read.
    c.finix.default_card = kasa_sim::CardScript::WaitForCardholder;
    let sandbox = rt.block_on(kasa_sim::Sandbox::start(c)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kasa.toml");
    let config = kasa_engine::Config::local(
        dir.path().join("data"),
        &sandbox.tokenx_url(),
        &sandbox.finix_url(),
        Some(sandbox.printer_addr()),
    );
    std::fs::write(&cfg, toml::to_string(&config).unwrap()).unwrap();
    let run = |args: &[&str]| {
        let out = kasa().args(args).arg("--config").arg(&cfg).arg("--sandbox-credentials").output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let order = sandbox.tokenx.add_random_order();
    let other = sandbox.tokenx.add_random_order();
    let register = kasa()
        .args(["sale", "--order", &order, "--pay", "card", "--config"])
        .arg(&cfg)
        .arg("--sandbox-credentials")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = register.id();
    let started = Instant::now();
    while !sandbox.finix.is_waiting("DVdemoKasaTerminal1") {
        assert!(started.elapsed() < Duration::from_secs(10), "the card never reached the terminal");
        std::thread::sleep(Duration::from_millis(10));
    }
    let running = format!("register running (process {pid}); its data, read-only");

    let (ok, status, err) = run(&["status"]);
    assert!(ok, "{err}");
    assert!(status.starts_with(&running), "{status}");
    assert!(status.contains("queue 1 pending, 0 parked") && status.contains("Paying"), "{status}");
    let (ok, orders, err) = run(&["orders"]);
    assert!(ok, "{err}");
    assert!(orders.starts_with(&running) && orders.contains(&order), "{orders}");
    let (ok, queue, err) = run(&["queue", "list"]);
    assert!(ok, "{err}");
    assert!(queue.starts_with(&running) && queue.contains("card_sale"), "{queue}");
    let (ok, journal, err) = run(&["journal", "verify"]);
    assert!(ok && journal.starts_with("journal intact"), "{journal}{err}");

    // Changing anything is the running register's business.
    for args in [&["recover"][..], &["sale", "--order", &other, "--pay", "cash"][..]] {
        let (ok, _, err) = run(args);
        assert!(!ok, "{args:?} must refuse");
        assert!(
            err.contains(&format!("another Kasa register (process {pid}) is running"))
                && err.contains("close it first"),
            "{args:?}: {err}"
        );
    }

    assert!(sandbox.finix.is_waiting("DVdemoKasaTerminal1"), "the card is still at the terminal");
    assert!(sandbox.finix.present_card("DVdemoKasaTerminal1", kasa_sim::CardScript::approve(Duration::ZERO)));
    let out = register.wait_with_output().unwrap();
    let sold = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{sold}{}", String::from_utf8_lossy(&out.stderr));
    assert!(sold.contains("Completed") || sold.contains("Paid") || sold.contains("Reported"), "{sold}");
    assert_eq!(sandbox.finix.succeeded_transfers().len(), 1, "one charge");
    let finix = sandbox.recorder.of("finix");
    assert_eq!(finix.iter().filter(|r| r.method == "POST" && r.path == "/transfers").count(), 1);
    assert!(finix.iter().all(|r| r.method != "PUT"), "nobody cancelled the sale at the terminal");
    let store = kasa_store::Store::open_read_only(&dir.path().join("data/kasa.db")).unwrap();
    let recoveries = store.journal_page(0, 10_000).unwrap().into_iter().filter(|e| e.kind == "recovery").count();
    assert_eq!(recoveries, 0, "no start-up recovery ran beside the register");
    assert_eq!(sandbox.tokenx.status_of(&other), Some("Open"), "the refused sale touched nothing");
}

/// Guessing the manager PIN through the CLI: each run is a new process (a restart), and the
/// lockout, kept in the database, stops the guesses all the same.
#[test]
fn pin_guesses_through_the_cli_are_stopped_by_the_lockout_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = kasa_cfg(dir.path(), &data);
    let run = |args: &[&str], stdin: &str| kasa_with_stdin(&cfg, args, stdin);
    let out = run(&["manager", "set-pin"], "1234\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 to 12 digits"), "a short PIN is refused");
    let out = run(&["manager", "set-pin"], "246810\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (mut answered, mut locked) = (0, 0);
    for i in 0..12 {
        let out = run(&["queue", "discard", "1", "--reason", "guessing"], &format!("{:06}\n", 100_000 + i));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Wrong PIN.") {
            answered += 1;
        } else {
            assert!(err.contains("Too many wrong PINs"), "{err}");
            locked += 1;
        }
    }
    assert_eq!((answered, locked), (5, 7), "five guesses checked, the rest refused unchecked");
    let out = run(&["queue", "discard", "1", "--reason", "guessing"], "246810\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Too many wrong PINs"), "the right PIN waits too");
}

/// `kasa journal export` and `kasa journal report` on a demo register's data: the export reads
/// only (beside no register, and it creates nothing), the Z closes the shift with the PIN.
#[test]
fn journal_export_and_reports_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = kasa().args(["demo", "--sales", "2", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = kasa_cfg(dir.path(), &data);
    let run = |args: &[&str], stdin: &str| {
        let out = kasa_with_stdin(&cfg, args, stdin);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let csv = dir.path().join("journal.csv");
    let (ok, _, err) = run(&["journal", "export", "--out", csv.to_str().unwrap()], "");
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let entries = kasa_store::Store::open_read_only(&data.join("kasa.db")).unwrap().journal_stats().unwrap().entries;
    assert_eq!(text.lines().count() as i64, entries + 1, "a header and every entry");
    assert!(err.contains(&format!("exported {entries} entries")), "{err}");
    let (ok, _, err) = run(&["journal", "export", "--from", "2099-01-01", "--out", csv.to_str().unwrap()], "");
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 1, "nothing after 2099");
    let (ok, _, err) = run(&["journal", "export", "--from", "1.12.2026"], "");
    assert!(!ok && err.contains("2026-12-01"), "a bad date says how to write it: {err}");

    let (ok, x, err) = run(&["journal", "report", "x"], "");
    assert!(ok, "{err}");
    assert!(x.contains("X REPORT") && x.contains("Cash expected"), "{x}");
    // The demo sold two pump orders by card and cash; the Z needs a note if the count is off.
    let (ok, _, err) = run(&["journal", "report", "z", "--counted", "0"], "246810\n");
    assert!(!ok && err.contains("write a note"), "{err}");
    let pdf = dir.path().join("z.pdf");
    let (ok, z, err) = run(
        &["journal", "report", "z", "--counted", "0", "--note", "counted at close", "--pdf", pdf.to_str().unwrap()],
        "246810\n",
    );
    assert!(ok, "{err}");
    assert!(z.contains("Z REPORT No 1"), "{z}");
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
    let zs = dir.path().join("zs.pdf");
    let (ok, _, err) = run(&["journal", "export", "--format", "pdf", "--out", zs.to_str().unwrap()], "");
    assert!(ok, "{err}");
    assert!(std::fs::read(&zs).unwrap().starts_with(b"%PDF"));
}

/// Runs `kasa ARGS --sandbox-credentials --config CFG` with `stdin` on its standard input.
fn kasa_with_stdin(cfg: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = kasa()
        .args(args)
        .args(["--sandbox-credentials", "--config"])
        .arg(cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}
