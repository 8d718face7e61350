//! One logging setup for every Kasa binary: `tracing` to standard error, filtered by `RUST_LOG`
//! (default: warnings, and Kasa's own information).
//!
//! The subscriber is installed with `set_global_default` rather than `init`, so a host that also
//! owns the `log` logger (the Tauri shell's plugins) is not fought over.

/// Installs the logger; a second call keeps the first one.
pub fn init() {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,kasa=info".into()),
        )
        .with_writer(std::io::stderr)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}
