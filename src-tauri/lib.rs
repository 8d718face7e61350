//! The desktop shell: a Tauri window over the Kasa engine.
//!
//! Starts the register (demo mode against the in-process sandbox unless a configuration is
//! given with `--config` or `KASA_CONFIG`), forwards the engine's events to the window as
//! `kasa://event`, and exposes the engine through the one-line commands in [`commands`]. The
//! app is single-instance: a second launch brings the running window to the front and exits.

mod commands;

use std::path::PathBuf;

use kasa_engine::{ApiError, Config, Engine, ErrorCode, KeyringCredentials};
use tauri::{Emitter, Manager};

/// What the window's commands reach: the register, or why it could not start.
pub struct Shell {
    engine: Result<Engine, ApiError>,
    _demo: Option<kasa_sim::Sandbox>,
}

impl Shell {
    /// The running register.
    pub fn engine(&self) -> Result<&Engine, ApiError> {
        self.engine.as_ref().map_err(Clone::clone)
    }

    /// Plays the sandbox's customer for the payment under way (demo mode only).
    pub async fn demo_customer(&self, action: &str) -> Result<String, ApiError> {
        let sandbox = self
            ._demo
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidState, "The sandbox customer exists only in demo mode."))?;
        kasa_engine::demo::play_customer(self.engine()?, sandbox, action.parse()?).await
    }
}

fn config_path() -> Option<PathBuf> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("KASA_CONFIG").map(PathBuf::from)
}

async fn start() -> Shell {
    match config_path() {
        Some(path) => {
            let engine = async {
                let mut config = Config::load(&path).map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
                if let Some(dir) = std::env::var_os("KASA_DATA_DIR") {
                    config.data_dir = PathBuf::from(dir);
                }
                Engine::start(config, &KeyringCredentials).await
            }
            .await;
            Shell { engine, _demo: None }
        }
        None => {
            // Demo: a fresh data directory per run, since the sandbox starts empty each time.
            let dir = std::env::var_os("KASA_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join(format!("kasa-demo-{}", std::process::id())));
            match kasa_engine::demo::start(dir, kasa_sim::SandboxConfig::demo()).await {
                Ok(d) => Shell { engine: Ok(d.engine), _demo: Some(d.sandbox) },
                Err(e) => Shell { engine: Err(e), _demo: None },
            }
        }
    }
}

/// Runs the desktop app until its window closes.
pub fn run() {
    kasa_engine::logging::init();

    let app = tauri::Builder::default()
        // First of all: a second launch hands over to the running register (its window comes
        // to the front) and exits before it starts an engine of its own.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tracing::info!("Kasa was launched again: showing the running register");
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.set_focus();
            }
            let _ = app.emit("kasa://relaunched", ());
        }))
        .setup(|app| {
            let shell = tauri::async_runtime::block_on(start());
            match &shell.engine {
                Ok(engine) => {
                    let mut events = engine.subscribe();
                    let handle = app.handle().clone();
                    tauri::async_runtime::spawn(async move {
                        loop {
                            match events.recv().await {
                                Ok(event) => {
                                    let _ = handle.emit("kasa://event", event);
                                }
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                            }
                        }
                    });
                }
                Err(e) => tracing::error!(error = %e, "the register could not start"),
            }
            app.manage(shell);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::orders,
            commands::refresh_orders,
            commands::catalog,
            commands::open_order_sale,
            commands::open_shop_sale,
            commands::add_item,
            commands::pay,
            commands::cancel_payment,
            commands::cancel_sale,
            commands::void_sale,
            commands::sale,
            commands::reprint,
            commands::queue,
            commands::retry_now,
            commands::discard,
            commands::has_manager_pin,
            commands::manager_login,
            commands::x_report,
            commands::search_sales,
            commands::verify_journal,
            commands::sale_detail,
            commands::export_journal_csv,
            commands::z_report,
            commands::print_report,
            commands::export_report_pdf,
            commands::manager_logout,
            commands::change_manager_pin,
            commands::refund,
            commands::recent_sales,
            commands::demo_customer,
            commands::retry_printer,
            commands::slip_png,
            commands::export_slip_pdf,
            commands::terminal,
            commands::set_terminal_active,
            commands::create_terminal,
            commands::set_customer,
            commands::fiscal_journal,
            commands::fiscal_daily_closing,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: the window could not open: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event
            && let Some(shell) = handle.try_state::<Shell>()
            && let Ok(engine) = shell.engine()
        {
            tauri::async_runtime::block_on(engine.shutdown());
        }
    });
}
