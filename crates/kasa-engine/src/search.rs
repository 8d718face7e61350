//! The manager's journal screens: sales found by search, one sale's whole story, and the
//! journal exported as CSV.

use kasa_core::journal::JournalEntry;
use kasa_core::search::SaleQuery;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::manager::QueueItem;
use crate::{ApiError, Engine, EngineEvent, ErrorCode, SaleView};

/// A page of sales found, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SearchPage {
    /// The sales.
    pub sales: Vec<SaleView>,
    /// Pass as `after` for the next page; none on the last.
    pub next: Option<String>,
}

/// One sale with everything the register did for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SaleDetail {
    /// The sale.
    pub sale: SaleView,
    /// Its journal entries, oldest first.
    pub journal: Vec<JournalEntry>,
    /// Its messages to the outside (delivered, waiting or parked), oldest first.
    pub messages: Vec<QueueItem>,
}

/// A date range bound as the manager types it, checked before a search or an export runs.
fn check_bound(text: &Option<String>) -> Result<(), ApiError> {
    if let Some(t) = text {
        kasa_core::search::parse_bound(t, false).map_err(|e| ApiError::new(ErrorCode::BadInput, e))?;
    }
    Ok(())
}

impl Engine {
    /// Sales matching `q` (manager session).
    pub async fn search_sales(&self, session: &str, q: SaleQuery) -> Result<SearchPage, ApiError> {
        self.authorize(session).await?;
        check_bound(&q.from)?;
        check_bound(&q.to)?;
        let page = self.db(move |s| Ok(s.search_sales(&q)?)).await?;
        Ok(SearchPage { sales: page.sales.iter().map(|s| self.view(s)).collect(), next: page.next })
    }

    /// One sale with its journal entries and messages (manager session).
    pub async fn sale_detail(&self, session: &str, sale_id: &str) -> Result<SaleDetail, ApiError> {
        self.authorize(session).await?;
        let sale = self.sale(sale_id).await?;
        let id = sale_id.to_string();
        let (journal, messages) = self
            .db(move |s| {
                let journal = s.journal_for_sale(&id)?;
                let messages = s.outbox_of_sale(&id)?.into_iter().map(QueueItem::from).collect();
                Ok((journal, messages))
            })
            .await?;
        Ok(SaleDetail { sale: self.view(&sale), journal, messages })
    }

    /// Writes the journal entries written from `from` until `to` (dates or RFC 3339 times, both
    /// optional) as CSV into the data directory's `exports/` folder, streaming; the screens
    /// hear its progress. Manager session; journaled.
    pub async fn export_journal_csv(
        &self,
        session: &str,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<std::path::PathBuf, ApiError> {
        self.authorize(session).await?;
        let range = |t: &Option<String>, end| {
            t.as_deref()
                .map(|t| kasa_core::search::parse_bound(t, end))
                .transpose()
                .map_err(|e| ApiError::new(ErrorCode::BadInput, e))
        };
        let (from_ms, to_ms) = (range(&from, false)?, range(&to, true)?);
        let dir = self.inner.config.data_dir.join("exports");
        let path = dir.join(format!("journal-{}.csv", self.now().unix_timestamp()));
        let p2 = path.clone();
        let events = self.inner.events.clone();
        let written = self
            .db(move |s| {
                let first = from_ms.map(|ms| s.journal_seq_at(ms)).transpose()?.unwrap_or(1);
                let end = match to_ms {
                    Some(ms) => s.journal_seq_at(ms)?,
                    None => s.journal_end()?,
                };
                crate::owner::create_private_dir(&dir).map_err(|e| setup_io(&dir, e))?;
                let file = std::fs::File::create(&p2).map_err(|e| setup_io(&p2, e))?;
                let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
                let mut progress = |done, total| {
                    let _ = events.send(EngineEvent::Progress { task: "journal_export".into(), done, total });
                };
                Ok(s.export_journal_csv(first, end, &mut out, &mut progress)?)
            })
            .await?;
        self.journal_event(
            "journal_exported",
            serde_json::json!({ "from": from, "to": to, "entries": written, "file": path }),
        )
        .await?;
        Ok(path)
    }
}

fn setup_io(path: &std::path::Path, e: std::io::Error) -> crate::StepError {
    crate::StepError::Api(ApiError::new(ErrorCode::Setup, format!("cannot write {}: {e}", path.display())))
}
