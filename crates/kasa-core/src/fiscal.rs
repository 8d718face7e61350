//! Fiscalization: which documents a register has signed by the fiscal middleware, and what the
//! signature says.
//!
//! Where the law asks for it, every receipt is signed by a signing unit behind the fiscal
//! middleware (fiskaltrust). A paid sale and each of its refunds are a receipt each; the day's
//! closing is one too. Signing is an outbox operation like any other ([`crate::op::Op::FiscalSign`]),
//! queued in the same transaction as the step that makes the receipt, with its operation id made
//! before the first attempt. All receipts share one lane, so they are signed in the order they
//! were made, also when the signing unit was down for a while and they are signed late.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A document to be signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "doc", rename_all = "snake_case")]
pub enum FiscalDoc {
    /// The receipt of a sale paid in full (the sale's id is its reference).
    Sale,
    /// The receipt of one refund of a signed sale (the refund's id is its reference).
    Refund {
        /// The refund.
        refund_id: String,
    },
    /// The day's closing receipt, with the manager's Z report number when there is one.
    DailyClosing {
        /// Its reference, unique (made when it was queued).
        reference: String,
        /// When the day was closed.
        #[serde(with = "time::serde::rfc3339")]
        at: time::OffsetDateTime,
        /// The Z report's number.
        #[serde(default)]
        z_number: Option<u64>,
    },
}

/// One line of a signature, as the middleware gave it (printed as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SignatureLine {
    /// The caption, e.g. `RT Device`.
    pub caption: String,
    /// The data.
    pub data: String,
}

/// The middleware's answer to a signed receipt, kept with the sale and printed on its slip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct FiscalSignature {
    /// The middleware's receipt number (`ftReceiptIdentification`).
    pub receipt_id: String,
    /// The cash register's identification at the tax authority (`ftCashBoxIdentification`).
    pub cashbox: String,
    /// When the middleware processed it (RFC 3339).
    pub moment: String,
    /// Signatures printed as text.
    pub lines: Vec<SignatureLine>,
    /// The signature printed as a QR code.
    pub qr: Option<String>,
}

/// Where a receipt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub enum FiscalState {
    /// Queued for signing, not signed yet (its slip says "signature pending").
    Pending,
    /// Signed.
    Signed,
}

/// One receipt of a sale: the sale's own, or a refund's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct FiscalReceipt {
    /// The receipt's reference at the middleware (`cbReceiptReference`): the sale's id, or the
    /// refund's.
    pub reference: String,
    /// The refund this receipt is for; none for the sale's own receipt.
    pub refund: Option<String>,
    /// Where it is.
    pub state: FiscalState,
    /// The signature, once signed.
    pub signature: Option<FiscalSignature>,
}

/// The buyer of a B2B invoice: a sale with one is signed as an invoice to that business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct BusinessCustomer {
    /// Company name.
    pub name: String,
    /// Address.
    pub address: Option<String>,
    /// VAT id.
    pub vat_id: String,
}
