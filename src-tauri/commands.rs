//! The window's commands: each converts its arguments and calls the engine, nothing more.

use kasa_core::{OrderSummary, PayMethod, ShopItem};
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
pub async fn pay(shell: State<'_, Shell>, sale_id: String, method: PayMethod) -> Res<SaleView> {
    shell.engine()?.pay(&sale_id, method).await
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
pub async fn sale(shell: State<'_, Shell>, sale_id: String) -> Res<SaleView> {
    shell.engine()?.sale_view(&sale_id).await
}

#[tauri::command]
pub async fn reprint(shell: State<'_, Shell>, sale_id: String) -> Res<()> {
    shell.engine()?.reprint(&sale_id).await
}

#[tauri::command]
pub async fn queue(shell: State<'_, Shell>) -> Res<Vec<kasa_engine::manager::QueueItem>> {
    shell.engine()?.queue(500).await
}

#[tauri::command]
pub async fn retry_now(shell: State<'_, Shell>, id: i64) -> Res<()> {
    shell.engine()?.retry_now(id).await
}

#[tauri::command]
pub async fn discard(shell: State<'_, Shell>, id: i64, pin: String, reason: String) -> Res<()> {
    shell.engine()?.discard(id, &pin, &reason).await
}

#[tauri::command]
pub async fn has_manager_pin(shell: State<'_, Shell>) -> Res<bool> {
    shell.engine()?.has_manager_pin().await
}

#[tauri::command]
pub async fn check_pin(shell: State<'_, Shell>, pin: String) -> Res<()> {
    shell.engine()?.check_pin(&pin).await
}

#[tauri::command]
pub async fn set_manager_pin(shell: State<'_, Shell>, pin: String, current: Option<String>) -> Res<()> {
    shell.engine()?.set_manager_pin(&pin, current.as_deref()).await
}
