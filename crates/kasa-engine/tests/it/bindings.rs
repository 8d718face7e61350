//! The UI's TypeScript types are generated from Rust; the committed file must be current.

#[test]
fn typescript_bindings_are_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/bindings.ts");
    let want = kasa_engine::dto::typescript_bindings();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("KASA_WRITE_BINDINGS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        have == want,
        "ui/src/bindings.ts is stale: run `KASA_WRITE_BINDINGS=1 cargo test -p kasa-engine --test it bindings` and commit it"
    );
}
