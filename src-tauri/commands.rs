//! The window's commands: each converts its arguments and calls the engine, nothing more.

use kasa_core::{Money, OrderSummary, PayMethod, ShopItem};
use kasa_engine::{ApiError, SaleView, StatusView};
use tauri::State;

use crate::Shell;

type Res<T> = Result<T, ApiError>;

#[tauri::command]
pub async fn status(shell: State<'_, Shell>) -> Res<StatusView> {
    Ok(shell.engine()?.status())
}

#[tauri::command]
pub async fn orders(shell: State<'_, Shell>) -> Res<Vec<OrderSummary>> {
    shell.engine()?.orders().await
}

#[tauri::command]
pub async fn refresh_orders(shell: State<'_, Shell>) -> Res<()> {
    shell.engine()?.refresh_orders();
    Ok(())
}

#[tauri::command]
pub async fn catalog(shell: State<'_, Shell>) -> Res<Vec<ShopItem>> {
    Ok(shell.engine()?.catalog().to_vec())
}

#[tauri::command]
pub async fn open_order_sale(shell: State<'_, Shell>, order_id: String) -> Res<SaleView> {
    shell.engine()?.open_order_sale(&order_id).await
}

#[tauri::command]
pub async fn open_shop_sale(shell: State<'_, Shell>) -> Res<SaleView> {
    shell.engine()?.open_shop_sale().await
}

#[tauri::command]
pub async fn add_item(shell: State<'_, Shell>, sale_id: String, sku: String, quantity: u32) -> Res<SaleView> {
    shell.engine()?.add_item(&sale_id, &sku, quantity).await
}

#[tauri::command]
pub async fn pay(shell: State<'_, Shell>, sale_id: String, method: PayMethod, amount: Option<Money>) -> Res<SaleView> {
    shell.engine()?.pay_part(&sale_id, method, amount).await
}

#[tauri::command]
pub async fn refund(
    shell: State<'_, Shell>,
    sale_id: String,
    payment: u32,
    amount: Money,
    session: String,
    reason: String,
) -> Res<SaleView> {
    shell.engine()?.refund(&sale_id, payment, amount, &session, &reason).await
}

#[tauri::command]
pub async fn recent_sales(shell: State<'_, Shell>, session: String) -> Res<Vec<SaleView>> {
    shell.engine()?.recent_sales(&session, 100).await
}

/// The demo sandbox's customer: approves or rejects the app or QR payment under way, or scans
/// its QR code. Only in demo mode.
#[tauri::command]
pub async fn demo_customer(shell: State<'_, Shell>, action: String) -> Res<String> {
    shell.demo_customer(&action).await
}

#[tauri::command]
pub async fn cancel_payment(shell: State<'_, Shell>, sale_id: String) -> Res<()> {
    shell.engine()?.cancel_payment(&sale_id).await
}

#[tauri::command]
pub async fn cancel_sale(shell: State<'_, Shell>, sale_id: String) -> Res<SaleView> {
    shell.engine()?.cancel_sale(&sale_id).await
}

#[tauri::command]
pub async fn void_sale(shell: State<'_, Shell>, sale_id: String, session: String) -> Res<SaleView> {
    shell.engine()?.void_sale(&sale_id, &session).await
}

#[tauri::command]
pub async fn sale(shell: State<'_, Shell>, sale_id: String) -> Res<SaleView> {
    shell.engine()?.sale_view(&sale_id).await
}

#[tauri::command]
pub async fn reprint(shell: State<'_, Shell>, sale_id: String, session: Option<String>) -> Res<()> {
    shell.engine()?.reprint(&sale_id, session.as_deref()).await
}

#[tauri::command]
pub async fn queue(shell: State<'_, Shell>, session: String) -> Res<Vec<kasa_engine::manager::QueueItem>> {
    shell.engine()?.queue(&session, 500).await
}

#[tauri::command]
pub async fn retry_now(shell: State<'_, Shell>, id: i64, session: Option<String>) -> Res<()> {
    shell.engine()?.retry_now(id, session.as_deref()).await
}

#[tauri::command]
pub async fn discard(shell: State<'_, Shell>, id: i64, session: String, reason: String) -> Res<()> {
    shell.engine()?.discard(id, &session, &reason).await
}

#[tauri::command]
pub async fn set_customer(
    shell: State<'_, Shell>,
    sale_id: String,
    customer: Option<kasa_core::BusinessCustomer>,
) -> Res<SaleView> {
    shell.engine()?.set_customer(&sale_id, customer).await
}

/// One of the fiscal middleware's journals, for the manager (session).
#[tauri::command]
pub async fn fiscal_journal(
    shell: State<'_, Shell>,
    session: String,
    kind: String,
    from: u64,
    take: u32,
) -> Res<Vec<serde_json::Value>> {
    shell.engine()?.fiscal_journal(&session, &kind, from, take).await
}

/// Queues the day's closing receipt at the fiscal middleware (manager session).
#[tauri::command]
pub async fn fiscal_daily_closing(shell: State<'_, Shell>, session: String) -> Res<String> {
    shell.engine()?.fiscal_daily_closing(&session, None).await
}

#[tauri::command]
pub async fn has_manager_pin(shell: State<'_, Shell>) -> Res<bool> {
    shell.engine()?.has_manager_pin().await
}

/// Opens a manager session with the PIN (each attempt counted; see `kasa_engine::access`).
#[tauri::command]
pub async fn manager_login(shell: State<'_, Shell>, pin: String) -> Res<kasa_engine::access::ManagerSession> {
    shell.engine()?.manager_login(&pin).await
}

#[tauri::command]
pub async fn manager_logout(shell: State<'_, Shell>, session: String) -> Res<()> {
    shell.engine()?.manager_logout(&session).await
}

/// Changes the manager PIN (the current one is checked like a login). The first PIN is set
/// when the register is set up, never from here.
#[tauri::command]
pub async fn change_manager_pin(shell: State<'_, Shell>, current: String, pin: String) -> Res<()> {
    shell.engine()?.change_manager_pin(&current, &pin).await
}

#[tauri::command]
pub async fn retry_printer(shell: State<'_, Shell>) -> Res<()> {
    shell.engine()?.retry_printer().await
}

/// The slip as the printer prints it, as a `data:` URL for an `<img>`.
#[tauri::command]
pub async fn slip_png(shell: State<'_, Shell>, sale_id: String) -> Res<String> {
    use base64::Engine as _;
    let png = shell.engine()?.slip_png(&sale_id).await?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)))
}

/// Writes the slip as a PDF into the data directory; returns the file's path.
#[tauri::command]
pub async fn export_slip_pdf(shell: State<'_, Shell>, sale_id: String, a4: bool) -> Res<String> {
    let paper = if a4 { kasa_print::pdf::Paper::A4 } else { kasa_print::pdf::Paper::Roll80 };
    Ok(shell.engine()?.export_slip_pdf(&sale_id, paper).await?.display().to_string())
}

#[tauri::command]
pub async fn terminal(shell: State<'_, Shell>) -> Res<kasa_engine::dto::TerminalView> {
    Ok(shell.engine()?.terminal().await?.into())
}

#[tauri::command]
pub async fn set_terminal_active(
    shell: State<'_, Shell>,
    active: bool,
    session: String,
) -> Res<kasa_engine::dto::TerminalView> {
    Ok(shell.engine()?.set_terminal_active(active, &session).await?.into())
}

#[tauri::command]
pub async fn create_terminal(
    shell: State<'_, Shell>,
    model: String,
    name: String,
    serial_number: String,
    session: String,
) -> Res<kasa_engine::dto::TerminalView> {
    Ok(shell.engine()?.create_terminal(&model, &name, &serial_number, &session).await?.into())
}

/// The shift so far (manager session).
#[tauri::command]
pub async fn x_report(shell: State<'_, Shell>, session: String) -> Res<kasa_core::report::ShiftReport> {
    shell.engine()?.x_report(&session).await
}

/// Closes the shift with the cash counted (manager session).
#[tauri::command]
pub async fn z_report(
    shell: State<'_, Shell>,
    session: String,
    counted: Money,
    note: Option<String>,
    next_float: Money,
) -> Res<kasa_core::report::ShiftReport> {
    shell.engine()?.z_report(&session, counted, note, next_float).await
}

/// Prints the X report, or Z report `number` (manager session).
#[tauri::command]
pub async fn print_report(shell: State<'_, Shell>, session: String, number: Option<u64>) -> Res<()> {
    shell.engine()?.print_report(&session, number).await
}

/// Writes the X report, or Z report `number`, as a PDF in the data directory; its path.
#[tauri::command]
pub async fn export_report_pdf(shell: State<'_, Shell>, session: String, number: Option<u64>) -> Res<String> {
    Ok(shell.engine()?.export_report_pdf(&session, number).await?.display().to_string())
}

/// Sales matching a search (manager session).
#[tauri::command]
pub async fn search_sales(
    shell: State<'_, Shell>,
    session: String,
    query: kasa_core::search::SaleQuery,
) -> Res<kasa_engine::search::SearchPage> {
    shell.engine()?.search_sales(&session, query).await
}

/// One sale with its journal entries and messages (manager session).
#[tauri::command]
pub async fn sale_detail(
    shell: State<'_, Shell>,
    session: String,
    sale_id: String,
) -> Res<kasa_engine::search::SaleDetail> {
    shell.engine()?.sale_detail(&session, &sale_id).await
}

/// Writes the journal of a date range as CSV in the data directory; its path. Progress comes
/// as `progress` events.
#[tauri::command]
pub async fn export_journal_csv(
    shell: State<'_, Shell>,
    session: String,
    from: Option<String>,
    to: Option<String>,
) -> Res<String> {
    Ok(shell.engine()?.export_journal_csv(&session, from, to).await?.display().to_string())
}

/// Verifies the whole journal chain now.
#[tauri::command]
pub async fn verify_journal(shell: State<'_, Shell>, session: String) -> Res<kasa_core::journal::Verification> {
    shell.engine()?.verify_journal_as_manager(&session).await
}
