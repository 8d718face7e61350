import { describe, expect, it } from "vitest";
import { cashSuggestions, formatMoney, parseAmount } from "./money";

describe("money on screen", () => {
  it("formats Turkish style", () => {
    expect(formatMoney({ minor: 123456, currency: "TRY" })).toBe("1.234,56 TRY");
    expect(formatMoney({ minor: 5, currency: "TRY" })).toBe("0,05 TRY");
    expect(formatMoney({ minor: -100000, currency: "EUR" })).toBe("-1.000,00 EUR");
    expect(formatMoney({ minor: 1500, currency: "JPY" })).toBe("1.500 JPY");
  });

  it("reads what a cashier types", () => {
    const p = (t: string) => parseAmount(t, "TRY")?.minor ?? null;
    expect(p("1500")).toBe(150000);
    expect(p("1500,5")).toBe(150050);
    expect(p("1500.50")).toBe(150050);
    expect(p("1.500,50")).toBe(150050);
    expect(p("1.500")).toBe(150000);
    expect(p("12,345")).toBe(1234500);
    expect(p("")).toBeNull();
    expect(p("abc")).toBeNull();
    expect(p("-5")).toBeNull();
  });

  it("suggests cash amounts at or above the total", () => {
    const s = cashSuggestions({ minor: 137670, currency: "TRY" }).map((m) => m.minor);
    expect(s[0]).toBe(137670);
    expect(s).toEqual([137670, 138000, 140000, 150000, 200000]);
  });
});
