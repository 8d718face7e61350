//! Movements of money and the Z reports that close shifts.

use crate::Cached;
use kasa_core::payment::MethodKind;
use kasa_core::report::{Movement, MovementKind, ShiftReport};
use kasa_core::{Currency, Money, Sale};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Store, StoreError, Tx, ts};

/// The last Z report, as the next shift needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastZ {
    /// Its number.
    pub number: u64,
    /// When it closed the shift.
    pub closed_at: String,
    /// The last movement it covered.
    pub last_movement: i64,
    /// The report.
    pub report: ShiftReport,
}

impl Tx<'_> {
    /// Records what storing `after` (over `before`) changed in money.
    pub(crate) fn record_movements(&self, before: Option<&Sale>, after: &Sale) -> Result<(), StoreError> {
        let list = kasa_core::report::movements(before, after).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let at = ts(after.updated_at);
        for m in list {
            self.conn().run(
                "INSERT INTO movements (at, sale_id, kind, refund_id, method, vat_rate_bp, amount_minor, vat_minor, currency, voiding)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    at,
                    m.sale_id,
                    m.kind.as_str(),
                    m.refund_id,
                    m.method.map(MethodKind::as_str),
                    m.vat_rate_bp,
                    m.amount.minor,
                    m.vat.minor,
                    m.amount.currency.as_str(),
                    m.voiding,
                ],
            )?;
        }
        Ok(())
    }

    /// The last Z report, inside the transaction.
    pub fn last_z(&self) -> Result<Option<LastZ>, StoreError> {
        last_z(self.conn())
    }

    /// The movements after `after`, inside the transaction, oldest first.
    pub fn movements_after(&self, after: i64) -> Result<Vec<(i64, Movement)>, StoreError> {
        movements_after(self.conn(), after)
    }

    /// Stores a Z report under its number (the next one; the primary key refuses a reuse).
    pub fn insert_z(&self, report: &ShiftReport, journal_seq: i64) -> Result<(), StoreError> {
        let number = report.number.ok_or_else(|| StoreError::Invalid("a Z report without a number".into()))?;
        self.conn().run(
            "INSERT INTO z_reports (number, closed_at, last_movement, journal_seq, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![number as i64, report.at, report.last_movement, journal_seq, serde_json::to_string(report)?],
        )?;
        Ok(())
    }
}

fn last_z(c: &Connection) -> Result<Option<LastZ>, StoreError> {
    let row: Option<(i64, String, i64, String)> = c
        .row("SELECT number, closed_at, last_movement, body FROM z_reports ORDER BY number DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    row.map(|(number, closed_at, last_movement, body)| {
        Ok(LastZ { number: number as u64, closed_at, last_movement, report: serde_json::from_str(&body)? })
    })
    .transpose()
}

fn movements_after(c: &Connection, after: i64) -> Result<Vec<(i64, Movement)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, sale_id, kind, refund_id, method, vat_rate_bp, amount_minor, vat_minor, currency, voiding
         FROM movements WHERE id > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([after], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<u32>>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, bool>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, sale_id, kind, refund_id, method, vat_rate_bp, amount, vat, currency, voiding) = row?;
        let currency = Currency::parse(&currency).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let kind = MovementKind::parse(&kind).ok_or_else(|| StoreError::Invalid(format!("movement kind {kind}")))?;
        out.push((
            id,
            Movement {
                kind,
                sale_id,
                refund_id,
                method: method.as_deref().and_then(MethodKind::parse),
                vat_rate_bp,
                amount: Money::new(amount, currency),
                vat: Money::new(vat, currency),
                voiding,
            },
        ));
    }
    Ok(out)
}

impl Store {
    /// The last Z report.
    pub fn last_z(&self) -> Result<Option<LastZ>, StoreError> {
        self.read(last_z)
    }

    /// Movements after `after`, oldest first (the shift since a Z report).
    pub fn movements_after(&self, after: i64) -> Result<Vec<(i64, Movement)>, StoreError> {
        self.read(|c| movements_after(c, after))
    }

    /// A Z report by number.
    pub fn z_report(&self, number: u64) -> Result<Option<ShiftReport>, StoreError> {
        self.read(|c| {
            let body: Option<String> =
                c.row("SELECT body FROM z_reports WHERE number = ?1", [number as i64], |r| r.get(0)).optional()?;
            body.map(|b| Ok(serde_json::from_str(&b)?)).transpose()
        })
    }

    /// The numbers of every Z report, in order.
    pub fn z_numbers(&self) -> Result<Vec<u64>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT number FROM z_reports ORDER BY number")?;
            let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().map(|n| n as u64).collect())
        })
    }
}
