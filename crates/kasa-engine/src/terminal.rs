//! The card terminal, as the manager sees it: its connection, activating it, registering a new
//! one (all journaled, behind the manager PIN).

use crate::providers::finix;
use crate::{ApiError, Engine, connect_error};

impl Engine {
    /// The configured card terminal, with its connection state (Finix `include_connection`).
    pub async fn terminal(&self) -> Result<kasa_connect::finix::Device, ApiError> {
        let device = self
            .inner
            .providers
            .finix
            .device(&self.inner.config.finix.device_id)
            .await
            .map_err(|e| connect_error(&e))?;
        self.set_terminal_problem(finix::terminal_problem(&device));
        Ok(device)
    }

    /// Activates (or deactivates) the configured card terminal (manager session); journaled.
    pub async fn set_terminal_active(
        &self,
        active: bool,
        session: &str,
    ) -> Result<kasa_connect::finix::Device, ApiError> {
        self.authorize(session).await?;
        let id = &self.inner.config.finix.device_id;
        let finix = &self.inner.providers.finix;
        let device = if active { finix.activate(id).await } else { finix.deactivate(id).await };
        device.map_err(|e| connect_error(&e))?;
        self.journal_event(
            if active { "terminal_activated" } else { "terminal_deactivated" },
            serde_json::json!({ "device": id }),
        )
        .await?;
        self.terminal().await
    }

    /// Registers a new card terminal under the merchant (manager session); journaled. Its id goes
    /// into the configuration's `finix.device_id`.
    pub async fn create_terminal(
        &self,
        model: &str,
        name: &str,
        serial_number: &str,
        session: &str,
    ) -> Result<kasa_connect::finix::Device, ApiError> {
        self.authorize(session).await?;
        let merchant = &self.inner.config.finix.merchant_id;
        let device = self
            .inner
            .providers
            .finix
            .create_device(
                merchant,
                model,
                name,
                &format!("{name} at {}", self.inner.config.tokenx.terminal_id),
                serial_number,
            )
            .await
            .map_err(|e| connect_error(&e))?;
        self.journal_event("terminal_created", serde_json::json!({ "device": device.id, "model": model })).await?;
        Ok(device)
    }
}
