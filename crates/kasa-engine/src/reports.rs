//! X and Z reports for the manager (see [`kasa_core::report`]).
//!
//! A Z report closes the shift in one transaction: it takes the next number, adds up the
//! shift's movements, checks the cash counted against the cash expected (a difference needs a
//! note), is written to the journal, and, where receipts are fiscalized, queues the fiscal
//! daily closing under its number. A crash before the commit leaves no number used; after
//! it, everything is there.

use kasa_core::journal::JournalRecord;
use kasa_core::report::{ReportHead, ReportKind, ShiftReport, add_up};
use kasa_core::{Money, MoneyError};
use kasa_store::{LastZ, StoreError, Tx};

use crate::{ApiError, Engine, ErrorCode, StepError};

fn money_error(e: MoneyError) -> StepError {
    StepError::Api(ApiError::new(ErrorCode::Internal, format!("the report does not add up: {e}")))
}

impl Engine {
    /// The shift so far (an X report); closes nothing.
    pub async fn x_report(&self, session: &str) -> Result<ShiftReport, ApiError> {
        self.authorize(session).await?;
        let head = self.report_head();
        let float = self.configured_float()?;
        let report = self
            .db(move |s| {
                let last = s.last_z()?;
                let movements = s.movements_after(last.as_ref().map_or(0, |z| z.last_movement))?;
                shift(head, float, last.as_ref(), ReportKind::X, movements)
            })
            .await?;
        self.journal_event("x_report", serde_json::json!({ "last_movement": report.last_movement })).await?;
        Ok(report)
    }

    /// Closes the shift: a Z report with the cash `counted`, a `note` (needed when the count
    /// differs from the cash expected) and the float left in the drawer for the next shift.
    pub async fn z_report(
        &self,
        session: &str,
        counted: Money,
        note: Option<String>,
        next_float: Money,
    ) -> Result<ShiftReport, ApiError> {
        self.authorize(session).await?;
        let head = self.report_head();
        let float = self.configured_float()?;
        let at = self.now();
        let fiscal = self.inner.providers.fiscal.is_some();
        let env = self.env().clone();
        let report = self
            .db(move |s| {
                s.write(|tx| -> Result<ShiftReport, StepError> {
                    let last = tx.last_z()?;
                    let movements = tx.movements_after(last.as_ref().map_or(0, |z| z.last_movement))?;
                    let mut report = shift(head, float, last.as_ref(), ReportKind::Z, movements)?;
                    report.number = Some(last.as_ref().map_or(1, |z| z.number + 1));
                    report
                        .close(counted, note.as_deref(), next_float)
                        .map_err(|e| StepError::Api(ApiError::new(ErrorCode::BadInput, e.to_string())))?;
                    close_in(tx, &report, fiscal, &env, at)?;
                    Ok(report)
                })
            })
            .await?;
        self.inner.dispatch_kick.notify_one();
        Ok(report)
    }

    /// A Z report by number (manager session).
    pub async fn z_report_by_number(&self, session: &str, number: u64) -> Result<ShiftReport, ApiError> {
        self.authorize(session).await?;
        self.db(move |s| {
            s.z_report(number)?.ok_or_else(|| StepError::Store(StoreError::NotFound(format!("Z report {number}"))))
        })
        .await
    }
    fn report_head(&self) -> ReportHead {
        report_head(&self.inner.config, self.now())
    }

    fn configured_float(&self) -> Result<Money, ApiError> {
        configured_float(&self.inner.config)
    }
}

fn report_head(config: &crate::Config, at: time::OffsetDateTime) -> ReportHead {
    let currency = config.currency().unwrap_or(kasa_core::Currency::TRY);
    ReportHead {
        kind: ReportKind::X,
        number: None,
        register: config.tokenx.terminal_id.clone(),
        opened_at: None,
        at: kasa_core::journal::format_time(at),
        currency,
        opening_float: Money::new(0, currency),
    }
}

/// The float the first shift opens with (`[manager] opening_float`).
fn configured_float(config: &crate::Config) -> Result<Money, ApiError> {
    let currency = config.currency().map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
    match &config.manager.opening_float {
        None => Ok(Money::new(0, currency)),
        Some(text) => Money::parse_decimal(text, currency).map_err(|e| {
            ApiError::new(
                ErrorCode::Setup,
                format!("manager.opening_float \"{text}\" is not an amount ({e}): write it like \"500.00\""),
            )
        }),
    }
}

/// The shift so far from a database opened read-only (`kasa journal report x` beside a
/// running register): the same report as [`Engine::x_report`], without a session (whoever
/// can read the database file can add it up).
pub fn x_report_of(
    store: &kasa_store::Store,
    config: &crate::Config,
    at: time::OffsetDateTime,
) -> Result<ShiftReport, ApiError> {
    let last = store.last_z()?;
    let movements = store.movements_after(last.as_ref().map_or(0, |z| z.last_movement))?;
    shift(report_head(config, at), configured_float(config)?, last.as_ref(), ReportKind::X, movements)
        .map_err(ApiError::from)
}

/// Adds up the shift after `last` (its float being what the last Z left, or `float`).
fn shift(
    mut head: ReportHead,
    float: Money,
    last: Option<&LastZ>,
    kind: ReportKind,
    movements: Vec<(i64, kasa_core::report::Movement)>,
) -> Result<ShiftReport, StepError> {
    head.kind = kind;
    head.opened_at = last.map(|z| z.closed_at.clone());
    head.opening_float = last.and_then(|z| z.report.next_float).unwrap_or(float);
    let from = last.map_or(0, |z| z.last_movement);
    let mut report = add_up(head, movements).map_err(money_error)?;
    report.last_movement = report.last_movement.max(from);
    Ok(report)
}

/// Writes a closed Z report: its journal entry, its row, and the fiscal daily closing.
fn close_in(
    tx: &Tx<'_>,
    report: &ShiftReport,
    fiscal: bool,
    env: &crate::Env,
    at: time::OffsetDateTime,
) -> Result<(), StoreError> {
    let rec = JournalRecord { sale_id: None, kind: "z_report".into(), data: serde_json::to_value(report)? };
    let entry = tx.append_journal(&rec, at)?;
    tx.insert_z(report, entry.seq)?;
    if fiscal {
        crate::providers::fiscal::queue_daily_closing(tx, env, at, report.number)?;
    }
    Ok(())
}

impl Engine {
    /// The X report now, or Z report `number`.
    async fn report(&self, session: &str, number: Option<u64>) -> Result<ShiftReport, ApiError> {
        match number {
            Some(n) => self.z_report_by_number(session, n).await,
            None => self.x_report(session).await,
        }
    }

    /// Prints the X report now, or Z report `number`, on the receipt printer.
    pub async fn print_report(&self, session: &str, number: Option<u64>) -> Result<(), ApiError> {
        let report = self.report(session, number).await?;
        let p = self.inner.providers.printer.clone().ok_or_else(|| {
            ApiError::new(ErrorCode::Setup, "No receipt printer is set up: export the report as a PDF instead.")
        })?;
        let blocks = kasa_print::layout::report_blocks(&report.lines(), p.width);
        let bytes = p.renderer.render(&blocks, false).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        let sent = self
            .env()
            .blocking(move || kasa_print::driver::send(&p.target, &bytes, Default::default()))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        sent.map_err(|e| ApiError::new(ErrorCode::Offline, format!("The report did not print: {e}")))?;
        self.journal_event("report_printed", serde_json::json!({ "z": number })).await
    }

    /// The X report now, or Z report `number`, as an A4 PDF with the embedded font.
    pub async fn report_pdf(&self, session: &str, number: Option<u64>) -> Result<Vec<u8>, ApiError> {
        let report = self.report(session, number).await?;
        let blocks = kasa_print::layout::report_blocks(&report.lines(), kasa_print::Width::Mm80);
        kasa_print::pdf::render_pdf(&blocks, kasa_print::pdf::Paper::A4)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
    }

    /// Writes the report's PDF into the data directory's `reports/` folder; returns the file.
    pub async fn export_report_pdf(&self, session: &str, number: Option<u64>) -> Result<std::path::PathBuf, ApiError> {
        let pdf = self.report_pdf(session, number).await?;
        let name = match number {
            Some(n) => format!("z-{n:04}.pdf"),
            None => format!("x-{}.pdf", self.now().unix_timestamp()),
        };
        let path = self.write_export("reports", &name, pdf).await?;
        self.journal_event("report_exported", serde_json::json!({ "z": number, "file": path })).await?;
        Ok(path)
    }

    /// Writes `bytes` to `folder/name` in the data directory (owner-only, like the database).
    pub(crate) async fn write_export(
        &self,
        folder: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<std::path::PathBuf, ApiError> {
        let dir = self.inner.config.data_dir.join(folder);
        let path = dir.join(name);
        let p2 = path.clone();
        self.env()
            .blocking(move || {
                crate::owner::create_private_dir(&dir)?;
                std::fs::write(&p2, bytes)
            })
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| ApiError::new(ErrorCode::Setup, format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }
}
