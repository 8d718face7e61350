// The shell's commands and events, typed with the generated bindings.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  ApiError,
  BusinessCustomer,
  EngineEvent,
  ManagerSession,
  Money,
  SaleDetail,
  SaleQuery,
  SearchPage,
  ShiftReport,
  Verification,
  OrderSummary,
  PayMethod,
  QueueItem,
  TerminalView,
  SaleView,
  ShopItem,
  StatusView,
} from "./bindings";

/** An error from the register, with a code the screens can act on. */
export class KasaError extends Error {
  constructor(public readonly error: ApiError) {
    super(error.message);
  }
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    if (e && typeof e === "object" && "code" in e && "message" in e) throw new KasaError(e as ApiError);
    throw new KasaError({ code: "INTERNAL", message: String(e) });
  }
}

export const api = {
  status: () => call<StatusView>("status"),
  orders: () => call<OrderSummary[]>("orders"),
  refreshOrders: () => call<void>("refresh_orders"),
  catalog: () => call<ShopItem[]>("catalog"),
  openOrderSale: (orderId: string) => call<SaleView>("open_order_sale", { orderId }),
  openShopSale: () => call<SaleView>("open_shop_sale"),
  addItem: (saleId: string, sku: string, quantity: number) => call<SaleView>("add_item", { saleId, sku, quantity }),
  pay: (saleId: string, method: PayMethod, amount: Money | null = null) =>
    call<SaleView>("pay", { saleId, method, amount }),
  refund: (saleId: string, payment: number, amount: Money, session: string, reason: string) =>
    call<SaleView>("refund", { saleId, payment, amount, session, reason }),
  recentSales: (session: string) => call<SaleView[]>("recent_sales", { session }),
  demoCustomer: (action: "approve" | "reject" | "scan" | "expire") => call<string>("demo_customer", { action }),
  retryPrinter: () => call<void>("retry_printer"),
  slipPng: (saleId: string) => call<string>("slip_png", { saleId }),
  exportSlipPdf: (saleId: string, a4: boolean) => call<string>("export_slip_pdf", { saleId, a4 }),
  terminal: () => call<TerminalView>("terminal"),
  setTerminalActive: (active: boolean, session: string) =>
    call<TerminalView>("set_terminal_active", { active, session }),
  createTerminal: (model: string, name: string, serialNumber: string, session: string) =>
    call<TerminalView>("create_terminal", { model, name, serialNumber, session }),
  cancelPayment: (saleId: string) => call<void>("cancel_payment", { saleId }),
  cancelSale: (saleId: string) => call<SaleView>("cancel_sale", { saleId }),
  voidSale: (saleId: string, session: string) => call<SaleView>("void_sale", { saleId, session }),
  sale: (saleId: string) => call<SaleView>("sale", { saleId }),
  reprint: (saleId: string, session: string | null = null) => call<void>("reprint", { saleId, session }),
  queue: (session: string) => call<QueueItem[]>("queue", { session }),
  retryNow: (id: number, session: string | null) => call<void>("retry_now", { id, session }),
  discard: (id: number, session: string, reason: string) => call<void>("discard", { id, session, reason }),
  hasManagerPin: () => call<boolean>("has_manager_pin"),
  managerLogin: (pin: string) => call<ManagerSession>("manager_login", { pin }),
  managerLogout: (session: string) => call<void>("manager_logout", { session }),
  changeManagerPin: (current: string, pin: string) => call<void>("change_manager_pin", { current, pin }),
  searchSales: (session: string, query: SaleQuery) => call<SearchPage>("search_sales", { session, query }),
  saleDetail: (session: string, saleId: string) => call<SaleDetail>("sale_detail", { session, saleId }),
  exportJournalCsv: (session: string, from: string | null, to: string | null) =>
    call<string>("export_journal_csv", { session, from, to }),
  verifyJournal: (session: string) => call<Verification>("verify_journal", { session }),
  xReport: (session: string) => call<ShiftReport>("x_report", { session }),
  zReport: (session: string, counted: Money, note: string | null, nextFloat: Money) =>
    call<ShiftReport>("z_report", { session, counted, note, nextFloat }),
  printReport: (session: string, number: number | null) => call<void>("print_report", { session, number }),
  exportReportPdf: (session: string, number: number | null) => call<string>("export_report_pdf", { session, number }),
  setCustomer: (saleId: string, customer: BusinessCustomer | null) =>
    call<SaleView>("set_customer", { saleId, customer }),
  fiscalJournal: (session: string, kind: "ReceiptJournal" | "ActionJournal" | "QueueItem", from = 0, take = 200) =>
    call<Record<string, unknown>[]>("fiscal_journal", { session, kind, from, take }),
  fiscalDailyClosing: (session: string) => call<string>("fiscal_daily_closing", { session }),
};

/** Subscribes to the register's events. */
/** Kasa was launched again while this register runs: the shell brought this window forward. */
export function onRelaunch(handler: () => void): Promise<UnlistenFn> {
  return listen("kasa://relaunched", () => handler());
}

export function onEvent(handler: (e: EngineEvent) => void): Promise<UnlistenFn> {
  return listen<EngineEvent>("kasa://event", (msg) => handler(msg.payload));
}
