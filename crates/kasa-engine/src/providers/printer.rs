//! The receipt printer: slips and refund slips rendered to ESC/POS and sent through the
//! configured driver, the drawer kick for cash, and the printer's status (paper, cover), watched
//! while it reports a problem so waiting slips print as soon as it is back.

use std::time::Duration;

use tokio::time::Instant;

use kasa_core::PaymentKind;
use kasa_print::escpos::{Renderer, Setup};
use kasa_print::{Model, Slip};
use kasa_store::OutboxRow;

use crate::delivery::{Delivery, LockChange, done};
use crate::{ApiError, Config, Engine, ErrorCode};

/// How a printer is reached and driven.
#[derive(Debug, Clone)]
pub(crate) struct PrinterSetup {
    pub(crate) target: kasa_print::driver::Target,
    /// The printer's commands, built once.
    pub(crate) renderer: Renderer,
    pub(crate) width: kasa_print::Width,
}

pub(crate) fn setup(config: &Config) -> Result<Option<PrinterSetup>, ApiError> {
    use kasa_print::driver::Target;
    let p = &config.printer;
    let target = match p.kind.as_str() {
        "tcp" => Target::Tcp(p.address.clone().unwrap_or_default()),
        "file" => Target::File(p.path.clone().unwrap_or_default()),
        "serial" => Target::Serial { path: p.path.clone().unwrap_or_default().display().to_string(), baud: p.baud },
        "spooler" => Target::Spooler(p.name.clone().unwrap_or_default()),
        _ => return Ok(None),
    };
    let model = Model::by_id(&p.model)
        .ok_or_else(|| ApiError::new(ErrorCode::Setup, format!("unknown printer model {}", p.model)))?;
    let mut setup = Setup::new(model, p.code_page);
    setup.page_number_override = p.page_number;
    let renderer = Renderer::new(&setup).map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
    Ok(Some(PrinterSetup { target, renderer, width: p.width }))
}

/// Delivers one print operation: the slip of a sale, a copy, or a refund slip.
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    match &row.op {
        kasa_core::Op::PrintSlip { copy, refund } => print(engine, row, *copy, refund.as_deref()).await,
        other => Delivery::Park { reason: format!("not a print operation: {:?}", other.kind()), event: None },
    }
}

async fn print(engine: &Engine, row: &OutboxRow, copy: bool, refund: Option<&str>) -> Delivery {
    let Some(printer) = engine.inner.providers.printer.clone() else {
        return done(None, LockChange::None);
    };
    let Some(sale_id) = row.sale_id.clone() else { return done(None, LockChange::None) };
    let sale = match engine.sale(&sale_id).await {
        Ok(s) => s,
        Err(e) => return Delivery::Park { reason: e.message, event: None },
    };
    let sale = if copy { sale } else { with_signature(engine, sale, refund).await };
    let store = &engine.inner.config.store;
    let (slip, cash) = match refund {
        Some(id) => {
            let Some(r) = sale.refunds.iter().find(|r| r.id == id) else {
                return Delivery::Park { reason: format!("no refund {id} in sale {sale_id}"), event: None };
            };
            let cash = sale.refunded_payment(r).is_some_and(|p| matches!(p.kind, PaymentKind::Cash { .. }));
            (Slip::from_refund(&sale, r, store), cash)
        }
        None => (
            Slip::from_sale(&sale, store, copy),
            sale.payments.iter().any(|p| matches!(p.kind, PaymentKind::Cash { .. })),
        ),
    };
    let slip = match slip {
        Ok(s) => s,
        Err(e) => return Delivery::Park { reason: e.to_string(), event: None },
    };
    // The drawer opens for cash taken or given back, never for a copy.
    let drawer = cash && !copy && engine.inner.config.printer.open_drawer_on_cash;
    let blocks = kasa_print::layout::layout(&slip, printer.width);
    let bytes = match printer.renderer.render(&blocks, drawer) {
        Ok(b) => b,
        Err(e) => return Delivery::Park { reason: e.to_string(), event: None },
    };
    let target = printer.target.clone();
    let sent = engine.env().blocking(move || kasa_print::driver::send(&target, &bytes, Default::default())).await;
    match sent {
        Ok(Ok(())) => {
            engine.set_printer_problem(None);
            done(None, LockChange::None)
        }
        Ok(Err(e)) => {
            // The cashier is told; the slip stays queued and prints once the printer is back.
            engine.set_printer_problem(Some(format!("Printer: {e}")));
            if e.is_transient() {
                Delivery::Retry { error: e.to_string(), maybe_applied: false }
            } else {
                Delivery::Park { reason: e.to_string(), event: None }
            }
        }
        Err(e) => Delivery::Retry { error: e.to_string(), maybe_applied: false },
    }
}

/// The sale as it is once the receipt this slip prints is signed, or once waiting for that
/// is no use: signing is known to be stalled (the unit or the middleware is away, or a receipt
/// is parked ahead of this one), or `print_wait_ms` passed. The slip then
/// says "signature pending", and the signed one can be reprinted later.
async fn with_signature(engine: &Engine, mut sale: kasa_core::Sale, refund: Option<&str>) -> kasa_core::Sale {
    let Some(fiscal) = engine.inner.providers.fiscal.as_ref() else { return sale };
    let reference = refund.unwrap_or(&sale.id.0).to_string();
    let pending = |s: &kasa_core::Sale| {
        s.fiscal.iter().any(|r| r.reference == reference && r.state == kasa_core::FiscalState::Pending)
    };
    let deadline = Instant::now() + fiscal.print_wait();
    let mut changes = engine.inner.fiscal_changes.subscribe();
    // Signed between the caller's read and the subscription: seen here.
    if pending(&sale)
        && let Ok(s) = engine.sale(&sale.id.0).await
    {
        sale = s;
    }
    while pending(&sale) && !engine.fiscal_stalled() && Instant::now() < deadline {
        tokio::select! {
            biased;
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
        match engine.sale(&sale.id.0).await {
            Ok(s) => sale = s,
            Err(_) => break,
        }
    }
    sale
}

/// While the printer reports a problem, it is asked this often whether it is back.
const PRINTER_CHECK: Duration = Duration::from_secs(2);

/// When a printer problem was reported, asks the printer whether it is back; once it is, the
/// problem is cleared and the slips waiting for it print at once.
pub(crate) async fn watch(engine: &Engine, last: &mut Option<Instant>) {
    if engine.status().printer_problem.is_none() || last.is_some_and(|t| t.elapsed() < PRINTER_CHECK) {
        return;
    }
    *last = Some(Instant::now());
    match engine.printer_status().await {
        Ok(Some(st)) if st.can_print() => {
            engine.set_printer_problem(None);
            let _ = engine.retry_printer().await;
        }
        Ok(Some(st)) => engine.set_printer_problem(Some(format!("Printer: {}", st.describe()))),
        Ok(None) => {}
        Err(e) => engine.set_printer_problem(Some(format!("Printer: {}", e.message))),
    }
}
