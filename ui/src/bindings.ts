// Generated from the Rust types by `kasa bindings`; do not edit.

export type QueueItem = { 
/**
 * Message id.
 */
id: number, 
/**
 * Operation kind, e.g. `tokenx_payment`.
 */
kind: string, 
/**
 * Delivery lane.
 */
lane: string, 
/**
 * The sale that caused it.
 */
saleId: string | null, 
/**
 * `pending` or `parked`.
 */
state: string, 
/**
 * Attempts so far.
 */
attempts: number, 
/**
 * The last failure.
 */
lastError: string | null, 
/**
 * When it was queued, RFC 3339.
 */
createdAt: string, };

export type ManagerSession = { 
/**
 * Sent with every privileged call.
 */
token: string, 
/**
 * The session ends after this many seconds without a privileged call.
 */
idleLogoutSecs: number, };

export type SearchPage = { 
/**
 * The sales.
 */
sales: Array<SaleView>, 
/**
 * Pass as `after` for the next page; none on the last.
 */
next: string | null, };

export type SaleDetail = { 
/**
 * The sale.
 */
sale: SaleView, 
/**
 * Its journal entries, oldest first.
 */
journal: Array<JournalEntry>, 
/**
 * Its messages to the outside (delivered, waiting or parked), oldest first.
 */
messages: Array<QueueItem>, };

export type SaleQuery = { 
/**
 * Opened at or after (RFC 3339, or a date `YYYY-MM-DD` meaning its start, UTC).
 */
from: string | null, 
/**
 * Opened before (RFC 3339, or a date meaning the start of the day after it).
 */
to: string | null, 
/**
 * The vehicle's plate (spaces and case do not matter).
 */
plate: string | null, 
/**
 * The pump order's id.
 */
orderId: string | null, 
/**
 * Paid (at least in part) by this method.
 */
method: MethodKind | null, 
/**
 * Total at least this (minor units).
 */
minMinor: number | null, 
/**
 * Total at most this (minor units).
 */
maxMinor: number | null, 
/**
 * In one of these states.
 */
states: Array<SaleState>, 
/**
 * Words found anywhere in the sale: items, plate, card, customer, reasons.
 */
text: string | null, 
/**
 * Where the previous page ended (its `next`).
 */
after: string | null, 
/**
 * Page size (1 to 200; 50 when absent).
 */
limit: number | null, };

export type JournalEntry = { 
/**
 * Position in the journal, from 1, without gaps.
 */
seq: number, 
/**
 * When it was written, RFC 3339 UTC.
 */
at: string, 
/**
 * The sale it belongs to.
 */
saleId: string | null, 
/**
 * Kind of step.
 */
kind: string, 
/**
 * Details as JSON text, sealed exactly as stored.
 */
data: string, 
/**
 * Seal of the previous entry.
 */
prevHash: string, 
/**
 * Seal of this entry.
 */
hash: string, };

export type ShiftReport = { 
/**
 * X or Z.
 */
kind: ReportKind, 
/**
 * The Z report's number (from 1, without gaps); none for an X report.
 */
number: number | null, 
/**
 * The register (its Token X terminal id).
 */
register: string, 
/**
 * When the shift opened: the previous Z report's time (none before the first Z).
 */
openedAt: string | null, 
/**
 * When this report was made.
 */
at: string, 
/**
 * Currency.
 */
currency: Currency, 
/**
 * Sales paid in full.
 */
sales: number, 
/**
 * Their gross.
 */
gross: Money, 
/**
 * Per method, in a fixed order.
 */
methods: Array<MethodTotal>, 
/**
 * Per VAT rate, ascending.
 */
vat: Array<VatTotal>, 
/**
 * Refunds given after a sale was paid.
 */
refunds: number, 
/**
 * Their sum.
 */
refunded: Money, 
/**
 * Sales voided.
 */
voids: number, 
/**
 * Money given back while voiding them.
 */
voided: Money, 
/**
 * Cash in the drawer when the shift opened.
 */
openingFloat: Money, 
/**
 * Float plus cash taken less cash given back.
 */
cashExpected: Money, 
/**
 * Cash counted at the close (Z).
 */
cashCounted: Money | null, 
/**
 * Counted less expected.
 */
difference: Money | null, 
/**
 * The manager's note (needed when there is a difference).
 */
note: string | null, 
/**
 * Cash left in the drawer for the next shift (Z).
 */
nextFloat: Money | null, 
/**
 * The last movement the report covers (the next shift starts after it).
 */
lastMovement: number, };

export type ReportKind = "x" | "z";

export type MethodTotal = { 
/**
 * The method.
 */
method: MethodKind, 
/**
 * Payments taken.
 */
payments: number, 
/**
 * Their sum.
 */
paid: Money, 
/**
 * Refunds (and void returns) given back by it.
 */
refunds: number, 
/**
 * Their sum.
 */
refunded: Money, 
/**
 * Paid less given back.
 */
net: Money, };

export type VatTotal = { 
/**
 * Rate in basis points (2000 = 20 %).
 */
rateBp: number, 
/**
 * Gross sold less gross refunded.
 */
gross: Money, 
/**
 * VAT in it.
 */
vat: Money, 
/**
 * Gross less VAT.
 */
net: Money, };

export type Verification = { 
/**
 * Entries checked.
 */
entries: number, 
/**
 * Where checking began: after this checkpoint's position (0 for the whole journal).
 */
from: number, 
/**
 * The first break, if the chain is not intact.
 */
firstBreak: ChainBreak | null, };

export type ChainBreak = { 
/**
 * The first position found wrong.
 */
seq: number, 
/**
 * What happened there.
 */
kind: BreakKind, 
/**
 * The same, said for a manager.
 */
reason: string, };

export type BreakKind = "edited" | "deleted" | "inserted" | "reordered" | "truncated";

export type TerminalView = { 
/**
 * Finix device id.
 */
id: string, 
/**
 * Model, e.g. `PAX_A920PRO`.
 */
model: string, 
/**
 * Name.
 */
name: string | null, 
/**
 * Serial number.
 */
serialNumber: string | null, 
/**
 * Activated.
 */
enabled: boolean, 
/**
 * Ready for payments (connection open).
 */
connected: boolean, };

export type AttemptView = { 
/**
 * Method.
 */
method: MethodKind, 
/**
 * The part paid by this attempt.
 */
amount: Money, 
/**
 * Text of the QR code the customer scans, for app and QR payments.
 */
qr: string | null, 
/**
 * That QR code as an SVG image.
 */
qrSvg: string | null, };

export type SaleView = { 
/**
 * Id.
 */
id: string, 
/**
 * When it was opened, RFC 3339 UTC.
 */
createdAt: string, 
/**
 * The vehicle's plate, for a pump order.
 */
plate: string | null, 
/**
 * State.
 */
state: SaleState, 
/**
 * Waiting for the cloud or the terminal.
 */
busy: boolean, 
/**
 * The pump order, if any.
 */
orderId: string | null, 
/**
 * Basket lines.
 */
lines: Array<Line>, 
/**
 * What each line comes to, in the same order.
 */
lineTotals: Array<Money>, 
/**
 * Total to pay.
 */
total: Money, 
/**
 * Payments taken.
 */
payments: Array<Payment>, 
/**
 * What can still be given back of each payment, in the same order (refunds under way and
 * done count); nothing while the sale is not paid in full.
 */
refundable: Array<Money>, 
/**
 * Paid in full (paid, reported or completed): the slip exists and refunds are possible.
 */
isPaid: boolean, 
/**
 * Paid so far.
 */
paid: Money, 
/**
 * Left to pay.
 */
remaining: Money, 
/**
 * The payment attempt under way.
 */
attempt: AttemptView | null, 
/**
 * Money given back.
 */
refunds: Array<Refund>, 
/**
 * Change to hand back, for cash.
 */
change: Money | null, 
/**
 * The last notice for the cashier.
 */
notice: Notice | null, 
/**
 * The pump's fiscal receipt.
 */
receipt: ReceiptInfo | null, 
/**
 * Payment attempts so far.
 */
attempts: number, 
/**
 * The customer slip as printed text, once paid.
 */
slipText: string | null, 
/**
 * The business the sale is invoiced to.
 */
customer: BusinessCustomer | null, 
/**
 * Its receipts at the fiscal middleware (empty where receipts are not signed).
 */
fiscal: Array<FiscalReceipt>, };

export type StatusView = { 
/**
 * Token X answered the last time it was asked.
 */
online: boolean, 
/**
 * Why the register is offline.
 */
offlineReason: string | null, 
/**
 * Seconds since the order list was last refreshed, if ever.
 */
ordersAgeSecs: number | null, 
/**
 * Operations waiting for delivery.
 */
queuePending: number, 
/**
 * Operations parked for the manager.
 */
queueParked: number, 
/**
 * Sales held for a manager (a provider took another amount than was asked).
 */
salesAttention: number, 
/**
 * This register's terminal id.
 */
terminalId: string, 
/**
 * The last printer problem, if the last job failed.
 */
printerProblem: string | null, 
/**
 * Why the card terminal can't take payments, when it can't.
 */
terminalProblem: string | null, 
/**
 * Whether receipts are signed by the fiscal middleware.
 */
fiscal: boolean, 
/**
 * Why receipts are not being signed now (they wait in the queue), when they are not.
 */
fiscalProblem: string | null, 
/**
 * Where the journal's chain is broken, when a verification found it broken.
 */
journalProblem: string | null, 
/**
 * Running against the built-in sandbox.
 */
demo: boolean, 
/**
 * What start-up recovery did, for the cashier to read.
 */
recovery: Array<string>, 
/**
 * Payment methods this register offers.
 */
methods: Array<MethodKind>, };

export type EngineEvent = { "type": "ordersChanged", 
/**
 * The list, newest first.
 */
orders: Array<OrderSummary>, } | { "type": "saleChanged", 
/**
 * The sale.
 */
sale: SaleView, } | { "type": "statusChanged", 
/**
 * The status.
 */
status: StatusView, } | { "type": "progress", 
/**
 * Which work, e.g. `journal_export`.
 */
task: string, 
/**
 * Done so far.
 */
done: number, 
/**
 * Of this many.
 */
total: number, };

export type OrderDetail = { 
/**
 * The order.
 */
order: PumpOrder, };

export type CatalogEntry = { 
/**
 * The article.
 */
item: ShopItem, };

export type ErrorCode = "NOT_FOUND" | "INVALID_STATE" | "BAD_INPUT" | "OFFLINE" | "REFUSED" | "SETUP" | "REGISTER_RUNNING" | "NOT_AUTHORIZED" | "INTERNAL";

export type ApiError = { 
/**
 * What kind of failure.
 */
code: ErrorCode, 
/**
 * A sentence for the user saying what happened and what to do.
 */
message: string, };

export type OrderSummary = { 
/**
 * The cloud's order id.
 */
orderId: string, 
/**
 * Vehicle plate as entered at the pump.
 */
plateNumber: string, 
/**
 * Pump number.
 */
pumpNo: number, 
/**
 * Product sold (e.g. "Motorin").
 */
productName: string, 
/**
 * Amount to pay.
 */
amount: Money, 
/**
 * Life-cycle status.
 */
status: OrderStatus, 
/**
 * When the pump added the order.
 */
createdAt: string, };

export type PumpOrder = { 
/**
 * The cloud's order id.
 */
orderId: string, 
/**
 * Vehicle plate.
 */
plateNumber: string, 
/**
 * Pump number.
 */
pumpNo: number, 
/**
 * Nozzle number.
 */
nozzleNo: number, 
/**
 * Product code at the pump.
 */
productCode: string, 
/**
 * Product name.
 */
productName: string, 
/**
 * Quantity delivered.
 */
litres: Litres, 
/**
 * Price per litre.
 */
unitPrice: Money, 
/**
 * Amount to pay (VAT included).
 */
amount: Money, 
/**
 * VAT rate in basis points (2000 = 20 %).
 */
vatRateBp: number, 
/**
 * Life-cycle status.
 */
status: OrderStatus, 
/**
 * When the pump added the order.
 */
createdAt: string, 
/**
 * The current lock, if any.
 */
lock: LockInfo | null, 
/**
 * The pump's receipt, once completed.
 */
receipt: ReceiptInfo | null, };

export type OrderStatus = "Open" | "Locked" | "Paid" | "Completed" | "Cancelled";

export type LockInfo = { 
/**
 * The lock's id, needed to unlock and to report payment.
 */
lockId: string, 
/**
 * The register that holds it.
 */
terminalId: string, 
/**
 * When it lapses unless renewed.
 */
expiresAt: string, };

export type ReceiptInfo = { 
/**
 * Fiscal receipt number.
 */
fiscalNo: string, 
/**
 * Z report number.
 */
zNo: string, 
/**
 * Electronic journal (EKÜ) number.
 */
ekuNo: string, 
/**
 * When the pump issued the receipt.
 */
issuedAt: string, };

export type Money = { minor: number, currency: string, exponent: number };

export type Currency = string;

export type Litres = string;

export type Line = { "type": "fuel", 
/**
 * The cloud's order id.
 */
orderId: string, 
/**
 * Pump number.
 */
pumpNo: number, 
/**
 * Vehicle plate.
 */
plateNumber: string, 
/**
 * Product name.
 */
productName: string, 
/**
 * Litres delivered.
 */
litres: Litres, 
/**
 * Price per litre.
 */
unitPrice: Money, 
/**
 * Line amount as the pump computed it.
 */
amount: Money, 
/**
 * VAT rate in basis points.
 */
vatRateBp: number, } | { "type": "item", 
/**
 * The article.
 */
item: ShopItem, 
/**
 * How many.
 */
quantity: number, };

export type ShopItem = { 
/**
 * Article number or barcode.
 */
sku: string, 
/**
 * Name shown on screen and slip.
 */
name: string, 
/**
 * Price of one unit, VAT included.
 */
unitPrice: Money, 
/**
 * VAT rate in basis points.
 */
vatRateBp: number, };

export type Payment = { 
/**
 * Amount paid (towards the total; cash change is not part of it).
 */
amount: Money, 
/**
 * Method and its details.
 */
kind: PaymentKind, };

export type PaymentKind = { "method": "card", 
/**
 * Slip fields.
 */
slip: CardSlip, } | { "method": "cash", 
/**
 * Cash received.
 */
tendered: Money, 
/**
 * Change handed back.
 */
change: Money, } | { "method": "mobilePay", 
/**
 * MobilePay's payment id.
 */
paymentId: string, } | { "method": "settle", 
/**
 * Settle's transaction id.
 */
tid: string, };

export type CardSlip = { 
/**
 * Card number with all but the last four digits masked.
 */
maskedPan: string, 
/**
 * Card brand (VISA, MASTERCARD, ...).
 */
brand: string, 
/**
 * How the card was read (CHIP_ENTRY, CONTACTLESS, ...).
 */
entryMode: string, 
/**
 * Issuer's approval code.
 */
approvalCode: string, 
/**
 * The terminal (device) that took the payment.
 */
terminalRef: string, 
/**
 * The processor's transaction id.
 */
transactionRef: string, 
/**
 * When the payment was approved, RFC 3339.
 */
paidAt: string, };

export type PayMethod = { "method": "card" } | { "method": "cash", 
/**
 * Cash received.
 */
tendered: Money, } | { "method": "mobilePay" } | { "method": "settle" };

export type Notice = { 
/**
 * Severity.
 */
level: NoticeLevel, 
/**
 * Machine-readable reason, e.g. `ORDER_LOCKED`, `DECLINED`.
 */
code: string, 
/**
 * A sentence for the cashier saying what happened and what to do.
 */
message: string, };

export type MethodKind = "card" | "cash" | "mobilePay" | "settle";

export type Refund = { 
/**
 * Id (also the provider's refund reference).
 */
id: string, 
/**
 * Index of the refunded payment in the sale's payments (or, for a refund of an unexpected
 * charge, in its `unexpected` charges).
 */
payment: number, 
/**
 * Whether this gives back an unexpected charge rather than a payment.
 */
unexpected: boolean, 
/**
 * Amount given back.
 */
amount: Money, 
/**
 * Why (for the journal and the slip).
 */
reason: string, 
/**
 * Where it is.
 */
state: RefundState, 
/**
 * When it was asked for.
 */
at: string, };

export type RefundState = "pending" | "done" | "failed";

export type NoticeLevel = "info" | "warning" | "error";

export type SaleState = "Open" | "Locking" | "Paying" | "Tendering" | "Voiding" | "Paid" | "Reported" | "Completed" | "Cancelled" | "NeedsAttention";

export type BusinessCustomer = { 
/**
 * Company name.
 */
name: string, 
/**
 * Address.
 */
address: string | null, 
/**
 * VAT id.
 */
vatId: string, };

export type FiscalReceipt = { 
/**
 * The receipt's reference at the middleware (`cbReceiptReference`): the sale's id, or the
 * refund's.
 */
reference: string, 
/**
 * The refund this receipt is for; none for the sale's own receipt.
 */
refund: string | null, 
/**
 * Where it is.
 */
state: FiscalState, 
/**
 * The signature, once signed.
 */
signature: FiscalSignature | null, };

export type FiscalSignature = { 
/**
 * The middleware's receipt number (`ftReceiptIdentification`).
 */
receiptId: string, 
/**
 * The cash register's identification at the tax authority (`ftCashBoxIdentification`).
 */
cashbox: string, 
/**
 * When the middleware processed it (RFC 3339).
 */
moment: string, 
/**
 * Signatures printed as text.
 */
lines: Array<SignatureLine>, 
/**
 * The signature printed as a QR code.
 */
qr: string | null, };

export type FiscalState = "Pending" | "Signed";

export type SignatureLine = { 
/**
 * The caption, e.g. `RT Device`.
 */
caption: string, 
/**
 * The data.
 */
data: string, };
