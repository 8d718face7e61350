//! The document's paths, relative to the base URL.

/// Create a refund (GET and POST).
pub const REFUND_CREATE: &str = "api/pos/refund/create";
/// Refund details.
pub const REFUND_DETAILS: &str = "api/pos/refund/details";
/// Refund ids of a payment.
pub const REFUNDS: &str = "api/pos/refunds";
/// Capture a refund.
pub const REFUND_CAPTURE: &str = "api/pos/refund/capture";
/// Cancel a refund.
pub const REFUND_CANCEL: &str = "api/pos/refund/cancel";
/// The QR code image link of a terminal.
pub const QRCODE: &str = "api/pos/terminal/qrcode";
/// Start a payment by terminalId (GET and POST).
pub const START: &str = "api/pos/payment/start";
/// Start a payment by posId (GET and POST).
pub const START_BY_POS: &str = "api/pos/payment/start/byPosId";
/// Prepare a payment (GET and POST).
pub const PREPARE: &str = "api/pos/payment/prepare";
/// Make a prepared payment ready (GET and POST).
pub const READY: &str = "api/pos/payment/ready";
/// Payment details.
pub const DETAILS: &str = "api/pos/payment/details";
/// List payments.
pub const PAYMENTS: &str = "api/pos/payments";
/// Payment status.
pub const STATUS: &str = "api/pos/payment/status";
/// Capture a payment.
pub const CAPTURE: &str = "api/pos/payment/capture";
/// Cancel a payment.
pub const CANCEL: &str = "api/pos/payment/cancel";
/// Find a lost paymentId by orderId and state (Captured only).
pub const RETRIEVE_BY_STATE: &str = "api/pos/payment/id/retrieve/bystate";
/// Find a lost paymentId by orderId and terminalId.
pub const RETRIEVE_BY_TERMINAL: &str = "api/pos/payment/id/retrieve/byterminal";
/// Find a lost paymentId by orderId and posId.
pub const RETRIEVE_BY_POS: &str = "api/pos/payment/id/retrieve/byposId";
/// Create the long-lived access token (GET and POST).
pub const TOKEN: &str = "api/pos/manage/token";
/// Reset the access token.
pub const TOKEN_RESET: &str = "api/pos/manage/token/reset";
/// Create a PoS for a terminal (GET and POST).
pub const CREATE: &str = "api/pos/manage/create";
/// Delete a terminal's PoS (GET and DELETE).
pub const DELETE: &str = "api/pos/manage/delete";
/// Terminal information.
pub const TERMINAL_INFORMATION: &str = "api/pos/manage/terminal/information";
/// Store ids of the merchant.
pub const STORES: &str = "api/pos/manage/stores";
/// Store information.
pub const STORE: &str = "api/pos/manage/store";
/// Who is checked in at a PoS, by posId.
pub const CHECK_IN_BY_POS: &str = "api/pos/manage/checkInStatus/byposId";
/// Who is checked in at a PoS, by terminalId.
pub const CHECK_IN_BY_TERMINAL: &str = "api/pos/manage/checkInStatus/byterminalId";
