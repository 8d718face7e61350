//! The customer slip as data, built from a sale.

use kasa_core::{Line, Money, PaymentKind, ReceiptInfo, Refund, Sale};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

/// The store's details for the slip header, and how dates are shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreInfo {
    /// Trading name.
    pub name: String,
    /// Address lines.
    pub address: Vec<String>,
    /// Tax office and number.
    pub tax_id: String,
    /// Lines printed at the bottom.
    pub footer: Vec<String>,
    /// Offset of the store's local time from UTC, in minutes.
    pub utc_offset_minutes: i32,
    /// Slip language: `tr` or `en`.
    pub language: String,
}

impl Default for StoreInfo {
    fn default() -> Self {
        StoreInfo {
            name: "KASA PETROL".into(),
            address: vec!["Atatürk Cad. No: 1".into(), "Kadıköy / İstanbul".into()],
            tax_id: "Kadıköy V.D. 1234567890".into(),
            footer: vec!["Teşekkür ederiz, iyi yolculuklar!".into()],
            utc_offset_minutes: 180,
            language: "tr".into(),
        }
    }
}

/// Slip words in one language.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// "Date".
    pub date: &'static str,
    /// "Sale".
    pub sale: &'static str,
    /// "TOTAL".
    pub total: &'static str,
    /// "VAT".
    pub vat: &'static str,
    /// "CARD".
    pub card: &'static str,
    /// "CASH".
    pub cash: &'static str,
    /// "CHANGE".
    pub change: &'static str,
    /// "Approval".
    pub approval: &'static str,
    /// "Terminal".
    pub terminal: &'static str,
    /// "Pump receipt".
    pub pump_receipt: &'static str,
    /// "COPY".
    pub copy: &'static str,
    /// "Plate".
    pub plate: &'static str,
    /// "REFUND".
    pub refund: &'static str,
    /// "Refund reason".
    pub refund_reason: &'static str,
    /// "Fiscal receipt".
    pub fiscal: &'static str,
    /// "SIGNATURE PENDING".
    pub signature_pending: &'static str,
    /// What a slip without its signature tells the customer.
    pub signature_later: &'static str,
}

const TR: Labels = Labels {
    date: "Tarih",
    sale: "Satış",
    total: "TOPLAM",
    vat: "KDV",
    card: "KART",
    cash: "NAKİT",
    change: "PARA ÜSTÜ",
    approval: "Onay",
    terminal: "Terminal",
    pump_receipt: "Pompa fişi",
    copy: "*** KOPYA ***",
    plate: "Plaka",
    refund: "İADE",
    refund_reason: "İade nedeni",
    fiscal: "Mali fiş",
    signature_pending: "*** İMZA BEKLENİYOR ***",
    signature_later: "İmzalı fiş kasadan yeniden basılabilir.",
};

const EN: Labels = Labels {
    date: "Date",
    sale: "Sale",
    total: "TOTAL",
    vat: "VAT",
    card: "CARD",
    cash: "CASH",
    change: "CHANGE",
    approval: "Approval",
    terminal: "Terminal",
    pump_receipt: "Pump receipt",
    copy: "*** COPY ***",
    plate: "Plate",
    refund: "REFUND",
    refund_reason: "Reason",
    fiscal: "Fiscal receipt",
    signature_pending: "*** SIGNATURE PENDING ***",
    signature_later: "The signed receipt can be reprinted at the till.",
};

/// One article or fuel line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlipLine {
    /// What was sold.
    pub description: String,
    /// Quantity × unit price, plate, and the like.
    pub detail: Option<String>,
    /// Line amount.
    pub amount: Money,
}

/// One payment on the slip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlipPayment {
    /// Method label, e.g. `KART VISA ************0059`.
    pub label: String,
    /// Amount.
    pub amount: Money,
    /// Further lines (approval code, terminal, change).
    pub details: Vec<(String, Option<Money>)>,
}

/// A customer slip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slip {
    /// Store header.
    pub store: StoreInfo,
    /// Printed as a copy (reprint).
    pub copy: bool,
    /// A title under the header (a refund slip says so).
    pub title: Option<String>,
    /// Sale id.
    pub sale_id: String,
    /// Local date and time, formatted.
    pub when: String,
    /// Lines.
    pub lines: Vec<SlipLine>,
    /// VAT per rate: (rate in basis points, VAT amount).
    pub vat: Vec<(u32, Money)>,
    /// Total.
    pub total: Money,
    /// Payments.
    pub payments: Vec<SlipPayment>,
    /// The pump's fiscal receipt, when known.
    pub receipt: Option<ReceiptInfo>,
    /// Data for a QR code at the bottom.
    pub qr: Option<String>,
    /// The fiscal middleware's signature (or that it is pending), where receipts are signed.
    #[serde(default)]
    pub fiscal: Option<SlipFiscal>,
}

/// The fiscal block of a slip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlipFiscal {
    /// The middleware's receipt number, once signed.
    pub receipt_id: Option<String>,
    /// Signature lines (caption, data).
    pub lines: Vec<(String, String)>,
    /// Not signed yet: the slip says so.
    pub pending: bool,
}

/// The fiscal block and the QR code of the receipt `reference` of a sale that is fiscalized.
fn fiscal_block(sale: &Sale, reference: &str) -> (Option<SlipFiscal>, Option<String>) {
    if !sale.fiscalize {
        return (None, None);
    }
    match sale.fiscal.iter().find(|r| r.reference == reference).and_then(|r| r.signature.as_ref()) {
        Some(sig) => (
            Some(SlipFiscal {
                receipt_id: Some(sig.receipt_id.clone()),
                lines: sig.lines.iter().map(|l| (l.caption.clone(), l.data.clone())).collect(),
                pending: false,
            }),
            sig.qr.clone(),
        ),
        None => (Some(SlipFiscal { receipt_id: None, lines: Vec::new(), pending: true }), None),
    }
}

impl Slip {
    /// The slip of a paid sale.
    pub fn from_sale(sale: &Sale, store: &StoreInfo, copy: bool) -> Result<Slip, kasa_core::MoneyError> {
        let offset = UtcOffset::from_whole_seconds(store.utc_offset_minutes * 60).unwrap_or(UtcOffset::UTC);
        let lines = sale
            .basket
            .lines
            .iter()
            .map(|l| {
                Ok(match l {
                    Line::Fuel { pump_no, product_name, litres, unit_price, amount, plate_number, .. } => SlipLine {
                        description: format!("P{pump_no} {product_name}"),
                        detail: Some(format!(
                            "{} L x {}  {}",
                            litres_text(litres.milli()),
                            plain(*unit_price),
                            plate_number
                        )),
                        amount: *amount,
                    },
                    Line::Item { item, quantity } => SlipLine {
                        description: item.name.clone(),
                        detail: (*quantity != 1).then(|| format!("{quantity} x {}", plain(item.unit_price))),
                        amount: l.amount()?,
                    },
                })
            })
            .collect::<Result<Vec<_>, kasa_core::MoneyError>>()?;
        let vat = sale.basket.vat_breakdown()?.into_iter().map(|(rate, vat, _)| (rate, vat)).collect();
        let labels = store.labels();
        let payments = sale.payments.iter().map(|p| slip_payment(labels, &p.kind, p.amount)).collect();
        let (fiscal, qr) = fiscal_block(sale, &sale.id.0);
        Ok(Slip {
            store: store.clone(),
            copy,
            title: None,
            sale_id: sale.id.0.clone(),
            when: local_time(sale.paid_at.unwrap_or(sale.updated_at), offset),
            lines,
            vat,
            total: sale.total()?,
            payments,
            receipt: sale.receipt.clone(),
            qr,
            fiscal,
        })
    }
}

impl Slip {
    /// The slip of one refund of a sale: what was given back, how, and why.
    pub fn from_refund(sale: &Sale, refund: &Refund, store: &StoreInfo) -> Result<Slip, kasa_core::MoneyError> {
        let offset = UtcOffset::from_whole_seconds(store.utc_offset_minutes * 60).unwrap_or(UtcOffset::UTC);
        let labels = store.labels();
        let back = Money::new(-refund.amount.minor, refund.amount.currency);
        let method = sale.refunded_payment(refund).map(|p| p.kind.clone());
        let mut payment = match &method {
            Some(kind) => slip_payment(labels, kind, back),
            None => SlipPayment { label: labels.refund.to_string(), amount: back, details: Vec::new() },
        };
        if let Some(PaymentKind::Cash { .. }) = method {
            payment.details.clear();
        }
        let (fiscal, qr) = fiscal_block(sale, &refund.id);
        Ok(Slip {
            store: store.clone(),
            copy: false,
            title: Some(labels.refund.to_string()),
            sale_id: sale.id.0.clone(),
            when: local_time(refund.at, offset),
            lines: vec![SlipLine {
                description: format!("{}: {}", labels.refund_reason, refund.reason),
                detail: None,
                amount: back,
            }],
            vat: Vec::new(),
            total: back,
            payments: vec![payment],
            receipt: None,
            qr,
            fiscal,
        })
    }
}

/// The slip lines of one payment (a refund passes a negative amount).
fn slip_payment(labels: &Labels, kind: &PaymentKind, amount: Money) -> SlipPayment {
    match kind {
        PaymentKind::Card { slip } => SlipPayment {
            label: format!("{} {} {}", labels.card, slip.brand, slip.masked_pan),
            amount,
            details: vec![
                (format!("{} {}  {}", labels.approval, slip.approval_code, slip.entry_mode), None),
                (format!("{} {}", labels.terminal, slip.terminal_ref), None),
                (format!("Ref {}", slip.transaction_ref), None),
            ],
        },
        PaymentKind::Cash { tendered, change } => SlipPayment {
            label: labels.cash.to_string(),
            amount: if amount.minor < 0 { amount } else { *tendered },
            details: vec![(labels.change.to_string(), Some(*change))],
        },
        PaymentKind::MobilePay { payment_id } => {
            SlipPayment { label: "MOBILEPAY".to_string(), amount, details: vec![(format!("Ref {payment_id}"), None)] }
        }
        PaymentKind::Settle { tid } => {
            SlipPayment { label: "SETTLE".to_string(), amount, details: vec![(format!("Ref {tid}"), None)] }
        }
    }
}

impl StoreInfo {
    /// The slip words in the store's language (English unless `tr`).
    pub fn labels(&self) -> &'static Labels {
        if self.language == "tr" { &TR } else { &EN }
    }
}

/// An amount without its currency, Turkish style: `1.234,56`.
pub fn plain(m: Money) -> String {
    let s = m.display_grouped();
    s.rsplit_once(' ').map(|(n, _)| n.to_string()).unwrap_or(s)
}

fn litres_text(milli: i64) -> String {
    format!("{},{:03}", milli / 1000, milli % 1000)
}

fn local_time(at: OffsetDateTime, offset: UtcOffset) -> String {
    let t = at.to_offset(offset);
    format!("{:02}.{:02}.{} {:02}:{:02}", t.day(), u8::from(t.month()), t.year(), t.hour(), t.minute())
}
