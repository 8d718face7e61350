import { describe, expect, it } from "vitest";
import { cashSuggestions, formatMoney, parseAmount } from "./money";

describe("money on screen", () => {
  it("formats Turkish style", () => {
    expect(formatMoney({ minor: 123456, currency: "TRY", exponent: 2 })).toBe("1.234,56 TRY");
    expect(formatMoney({ minor: 5, currency: "TRY", exponent: 2 })).toBe("0,05 TRY");
    expect(formatMoney({ minor: -100000, currency: "EUR", exponent: 2 })).toBe("-1.000,00 EUR");
    expect(formatMoney({ minor: 1500, currency: "JPY", exponent: 0 })).toBe("1.500 JPY");
    // The exponent comes with the amount: a currency the UI never heard of formats right.
    expect(formatMoney({ minor: 1234567, currency: "IQD", exponent: 3 })).toBe("1.234,567 IQD");
    expect(formatMoney({ minor: 1500, currency: "CLP", exponent: 0 })).toBe("1.500 CLP");
  });

  it("reads what a cashier types", () => {
    const lira = { minor: 0, currency: "TRY", exponent: 2 };
    const p = (t: string) => parseAmount(t, lira)?.minor ?? null;
    expect(p("1500")).toBe(150000);
    expect(p("1500,5")).toBe(150050);
    expect(p("1500.50")).toBe(150050);
    expect(p("1.500,50")).toBe(150050);
    expect(p("1.500")).toBe(150000);
    expect(p("12,345")).toBe(1234500);
    expect(p("")).toBeNull();
    expect(p("abc")).toBeNull();
    expect(p("-5")).toBeNull();
    expect(parseAmount("12,345", { minor: 0, currency: "KWD", exponent: 3 })?.minor).toBe(12345);
  });

  it("suggests cash amounts at or above the total", () => {
    const s = cashSuggestions({ minor: 137670, currency: "TRY", exponent: 2 }).map((m) => m.minor);
    expect(s[0]).toBe(137670);
    expect(s).toEqual([137670, 138000, 140000, 150000, 200000]);
  });
});
