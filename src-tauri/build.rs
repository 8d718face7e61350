//! Build script of the desktop app: checks the UI is built, then lets Tauri embed it.

fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/dist/index.html");
    if !dist.exists() {
        println!(
            "cargo::error=the UI is not built ({} is missing): run `npm --prefix ui ci && npm --prefix ui run build`, or ./scripts/test which does it",
            dist.display()
        );
        return;
    }
    println!("cargo::rerun-if-changed=ui/dist");
    tauri_build::build()
}
