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
    let out = kasa().args(["journal", "verify", "--config"]).arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("journal intact"));
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
