//! Slips and the printer as the register's API: reprints, the slip as PDF or as a picture, the
//! printer's status, the drawer.

use kasa_core::Sale;
use kasa_core::journal::JournalRecord;
use kasa_core::op::{Op, Queued};
use kasa_print::Slip;

use crate::{ApiError, Config, Engine, ErrorCode, StepError};

/// How long after a sale is paid the cashier may print a copy of its slip without a manager.
pub const CASHIER_REPRINT: time::Duration = time::Duration::minutes(10);

impl Engine {
    /// The paper is back (or the cover closed): print what waits for the printer now.
    pub async fn retry_printer(&self) -> Result<(), ApiError> {
        let at = self.now();
        self.db(move |s| Ok(s.write(|tx| tx.outbox_due_now(&Op::PrintSlip { copy: false, refund: None }.lane(), at))?))
            .await?;
        self.inner.dispatch_kick.notify_one();
        Ok(())
    }

    /// Asks the printer for its status (paper, cover, online); `None` when it does not answer
    /// status requests or no printer is set up.
    pub async fn printer_status(&self) -> Result<Option<kasa_print::driver::PrinterStatus>, ApiError> {
        let Some(p) = self.inner.providers.printer.clone() else { return Ok(None) };
        let result = self
            .env()
            .blocking(move || kasa_print::driver::status(&p.target, Default::default()))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        match result {
            Ok(status) => Ok(status),
            Err(e) => Err(ApiError::new(ErrorCode::Offline, e.to_string())),
        }
    }

    /// Opens the cash drawer (manager session); journaled.
    pub async fn open_drawer(&self, session: &str) -> Result<(), ApiError> {
        self.authorize(session).await?;
        let p = self.inner.providers.printer.clone().ok_or_else(|| {
            ApiError::new(ErrorCode::Setup, "No printer is set up: the drawer hangs off the printer.")
        })?;
        let sent = self
            .env()
            .blocking(move || {
                kasa_print::driver::send(&p.target, &kasa_print::escpos::drawer_only(), Default::default())
            })
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        sent.map_err(|e| ApiError::new(ErrorCode::Offline, e.to_string()))?;
        let at = self.now();
        self.db(move |s| {
            let rec = JournalRecord { sale_id: None, kind: "drawer_opened".into(), data: serde_json::json!({}) };
            Ok(s.write(|tx| tx.append_journal(&rec, at))?)
        })
        .await?;
        Ok(())
    }

    /// A paid sale's slip (or, with `refund`, a refund's slip) as a PDF.
    pub async fn slip_pdf(
        &self,
        sale_id: &str,
        paper: kasa_print::pdf::Paper,
        copy: bool,
    ) -> Result<Vec<u8>, ApiError> {
        render_slip_pdf(&self.sale(sale_id).await?, &self.inner.config, paper, copy)
    }

    /// Writes a paid sale's slip as a PDF into the data directory's `slips/` folder (for
    /// e-mailing or archiving); returns the file.
    pub async fn export_slip_pdf(
        &self,
        sale_id: &str,
        paper: kasa_print::pdf::Paper,
    ) -> Result<std::path::PathBuf, ApiError> {
        let pdf = self.slip_pdf(sale_id, paper, true).await?;
        let dir = self.inner.config.data_dir.join("slips");
        let path = dir.join(format!("{sale_id}.pdf"));
        let p2 = path.clone();
        self.env()
            .blocking(move || {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&p2, pdf)
            })
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| ApiError::new(ErrorCode::Setup, format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// A picture of the slip as the printer prints it (PNG), for the on-screen preview.
    pub async fn slip_png(&self, sale_id: &str) -> Result<Vec<u8>, ApiError> {
        let sale = self.sale(sale_id).await?;
        let mut slip = Slip::from_sale(&sale, &self.inner.config.store, false)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        slip.receipt = None;
        let width = self.slip_width();
        let blocks = kasa_print::layout::layout(&slip, width);
        Ok(kasa_print::raster::render_png(&blocks, width))
    }

    pub(crate) fn slip_width(&self) -> kasa_print::Width {
        self.inner.providers.printer.as_ref().map(|p| p.width).unwrap_or(self.inner.config.printer.width)
    }

    /// Queues a copy of the slip of a paid sale. In a manager session any paid sale's; without
    /// one, only the slip of the sale the cashier just finished (the register's newest, paid in
    /// the last [`CASHIER_REPRINT`]), for the customer at the counter. Journaled with who asked.
    pub async fn reprint(&self, sale_id: &str, session: Option<&str>) -> Result<(), ApiError> {
        let manager = match session {
            Some(session) => {
                self.authorize(session).await?;
                true
            }
            None => false,
        };
        let id = sale_id.to_string();
        let at = self.now();
        let key = self.env().next_id();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StepError> {
                let sale = tx.sale(&id)?;
                if !sale.state.is_paid() {
                    return Err(StepError::Api(ApiError::new(ErrorCode::InvalidState, "Only a paid sale has a slip.")));
                }
                let just_finished = sale.paid_at.is_some_and(|t| at - t <= CASHIER_REPRINT)
                    && tx.newest_sale_id()?.as_deref() == Some(id.as_str());
                if !manager && !just_finished {
                    return Err(StepError::Api(ApiError::new(
                        ErrorCode::NotAuthorized,
                        "A copy of an earlier sale's slip is printed from the manager area.",
                    )));
                }
                let q = Queued { key, op: Op::PrintSlip { copy: true, refund: None } };
                tx.enqueue(Some(&id), &q, at)?;
                let rec = JournalRecord {
                    sale_id: Some(id.clone()),
                    kind: "slip_reprinted".into(),
                    data: serde_json::json!({ "by": if manager { "manager" } else { "cashier" } }),
                };
                tx.append_journal(&rec, at)?;
                Ok(())
            })
        })
        .await?;
        self.inner.dispatch_kick.notify_one();
        Ok(())
    }

    /// The slip as it was printed at payment: the pump's receipt, which arrives later, is
    /// shown beside it and goes only on copies.
    pub(crate) fn slip_text(&self, sale: &Sale) -> Option<String> {
        let mut slip = Slip::from_sale(sale, &self.inner.config.store, false).ok()?;
        slip.receipt = None;
        let width = self.slip_width();
        let blocks = kasa_print::layout::layout(&slip, width);
        // Show what the printer will print: the text as its code page can render it.
        let page = self.inner.config.printer.code_page;
        Some(page.printed_form(&kasa_print::layout::to_text(&blocks)))
    }
}

/// A paid sale's slip as a PDF, laid out for the configured printer's paper width.
pub(crate) fn render_slip_pdf(
    sale: &Sale,
    config: &Config,
    paper: kasa_print::pdf::Paper,
    copy: bool,
) -> Result<Vec<u8>, ApiError> {
    if !sale.state.is_paid() {
        return Err(ApiError::new(ErrorCode::InvalidState, "Only a paid sale has a slip."));
    }
    let slip =
        Slip::from_sale(sale, &config.store, copy).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let blocks = kasa_print::layout::layout(&slip, config.printer.width);
    kasa_print::pdf::render_pdf(&blocks, paper).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}
