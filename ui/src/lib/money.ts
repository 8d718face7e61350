// Money on screen: integer minor units, shown Turkish style (1.234,56 TRY). The engine sends every
// amount with its currency's exponent; nothing here keeps a table of minor units.
import type { Money } from "../bindings";

/** `1.234,56` without the currency. */
export function formatAmount(m: Money): string {
  const exp = m.exponent;
  const scale = 10 ** exp;
  const abs = Math.abs(m.minor);
  const whole = Math.floor(abs / scale)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  const frac = exp > 0 ? "," + (abs % scale).toString().padStart(exp, "0") : "";
  return (m.minor < 0 ? "-" : "") + whole + frac;
}

/** `1.234,56 TRY`. */
export function formatMoney(m: Money): string {
  return `${formatAmount(m)} ${m.currency}`;
}

/**
 * Reads what a cashier typed (`1500`, `1500,5`, `1.500,50`, `1500.50`) as minor units of the
 * currency of `like`, or returns null when it is not an amount. A single separator followed by
 * up to as many digits as the currency has decimals is the decimal mark; other separators group
 * thousands.
 */
export function parseAmount(text: string, like: Money): Money | null {
  const { currency, exponent: exp } = like;
  const t = text.trim().replace(/\s/g, "");
  if (!/^\d[\d.,]*$/.test(t)) return null;
  const m = /^(.*?)[.,](\d{1,3})$/.exec(t);
  let whole = t;
  let frac = "";
  if (m && m[2].length <= exp && !(m[2].length === 3 && exp < 3)) {
    whole = m[1];
    frac = m[2];
  }
  whole = whole.replace(/[.,]/g, "");
  if (whole === "" || !/^\d+$/.test(whole)) return null;
  const minor = Number(whole) * 10 ** exp + Number(frac.padEnd(exp, "0") || "0");
  if (!Number.isSafeInteger(minor)) return null;
  return { minor, currency, exponent: exp };
}

/** Round-up suggestions for cash tendered: exact, then the next notes. */
export function cashSuggestions(total: Money): Money[] {
  const unit = 10 ** total.exponent;
  const steps = [10, 50, 100, 200, 500, 1000].map((n) => n * unit);
  const out: number[] = [total.minor];
  for (const s of steps) {
    const up = Math.ceil(total.minor / s) * s;
    if (up > total.minor && !out.includes(up)) out.push(up);
    if (out.length >= 5) break;
  }
  return out.map((minor) => ({ ...total, minor }));
}
