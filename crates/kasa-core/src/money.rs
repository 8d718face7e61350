//! Money and fuel quantities as exact integers.
//!
//! Amounts are integer minor units (kuruş, cents, øre) tagged with an ISO 4217 currency; litres
//! are fixed-point thousandths. No floating point is used anywhere money is computed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ts_rs::TS;

/// Why a money operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Two amounts of different currencies were combined.
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit in 64 bits of minor units.
    #[error("amount out of range")]
    Overflow,
    /// A currency code is not three upper-case ASCII letters.
    #[error("'{0}' is not an ISO 4217 currency code (three letters such as TRY or EUR)")]
    BadCurrency(String),
    /// A decimal string could not be read as an amount or quantity.
    #[error("'{0}' is not a valid decimal amount: {1}")]
    BadDecimal(String, &'static str),
}

/// An ISO 4217 currency code such as `TRY`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, TS)]
#[ts(type = "string")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Turkish lira.
    pub const TRY: Currency = Currency(*b"TRY");
    /// Euro.
    pub const EUR: Currency = Currency(*b"EUR");
    /// US dollar.
    pub const USD: Currency = Currency(*b"USD");
    /// Danish krone.
    pub const DKK: Currency = Currency(*b"DKK");
    /// Norwegian krone.
    pub const NOK: Currency = Currency(*b"NOK");
    /// ISO 4217's code for "no currency", for an amount whose currency could not be read.
    pub const XXX: Currency = Currency(*b"XXX");

    /// Parses a three-letter code; lower case is accepted and upper-cased.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(MoneyError::BadCurrency(code.to_string()));
        }
        Ok(Currency([bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase(), bytes[2].to_ascii_uppercase()]))
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point in this currency (ISO 4217 minor unit).
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"ISK" | b"CLP" | b"VND" => 0,
            b"KWD" | b"BHD" | b"JOD" | b"OMR" | b"TND" | b"IQD" | b"LYD" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: integer minor units in one currency.
///
/// Written out (for the screens, the database and the journal) with the currency's exponent
/// beside it, so nothing downstream keeps its own table of minor units; read back from the two
/// fields that make it, the exponent being derived.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Deserialize, TS)]
#[ts(type = "{ minor: number, currency: string, exponent: number }")]
pub struct Money {
    /// Minor units (kuruş for TRY); negative for refunds and change given.
    pub minor: i64,
    /// ISO 4217 currency.
    pub currency: Currency,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Money", 3)?;
        m.serialize_field("minor", &self.minor)?;
        m.serialize_field("currency", &self.currency)?;
        m.serialize_field("exponent", &self.currency.exponent())?;
        m.end()
    }
}

impl Money {
    /// An amount from minor units.
    pub const fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Zero in the given currency.
    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// Sum of two amounts of the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_add(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, currency: self.currency })
    }

    /// Difference of two amounts of the same currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_sub(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, currency: self.currency })
    }

    /// The amount times an integer count.
    pub fn checked_mul(self, count: i64) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_mul(count).ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, currency: self.currency })
    }

    /// Sums amounts that must all be in `currency`.
    pub fn sum<I: IntoIterator<Item = Money>>(currency: Currency, items: I) -> Result<Money, MoneyError> {
        items.into_iter().try_fold(Money::zero(currency), Money::checked_add)
    }

    /// The VAT contained in this VAT-inclusive amount at `rate_bp` basis points (2000 = 20 %),
    /// rounded half away from zero to the minor unit.
    pub fn included_vat(self, rate_bp: u32) -> Money {
        let rate = i128::from(rate_bp);
        let num = i128::from(self.minor) * rate;
        let den = 10_000 + rate;
        let q = num / den;
        let r = num % den;
        let rounded = if 2 * r.abs() >= den { q + num.signum() } else { q };
        Money { minor: rounded as i64, currency: self.currency }
    }

    /// Parses a decimal string such as `"1234.56"` in the currency's exponent.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let minor = parse_fixed(text, currency.exponent())?;
        Ok(Money { minor, currency })
    }

    /// The amount as a plain decimal string, e.g. `1234.56`.
    pub fn to_decimal_string(&self) -> String {
        format_fixed(self.minor, self.currency.exponent(), '.', None)
    }

    /// The amount for people: grouped thousands and a decimal comma, e.g. `1.234,56 TRY`.
    pub fn display_grouped(&self) -> String {
        format!("{} {}", format_fixed(self.minor, self.currency.exponent(), ',', Some('.')), self.currency)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A fuel quantity in litres, exact to the millilitre.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, TS)]
#[ts(type = "string")]
pub struct Litres {
    milli: i64,
}

impl Litres {
    /// From thousandths of a litre.
    pub const fn from_milli(milli: i64) -> Litres {
        Litres { milli }
    }

    /// Thousandths of a litre.
    pub const fn milli(&self) -> i64 {
        self.milli
    }

    /// Parses `"41.23"` or `"41.235"` (at most three fraction digits).
    pub fn parse(text: &str) -> Result<Litres, MoneyError> {
        Ok(Litres { milli: parse_fixed(text, 3)? })
    }

    /// Three fraction digits, as the wire contract carries them: `41.230`.
    pub fn to_wire(&self) -> String {
        format_fixed(self.milli, 3, '.', None)
    }

    /// The price of this quantity at `unit_price` per litre, rounded half away from zero.
    pub fn price_at(&self, unit_price: Money) -> Result<Money, MoneyError> {
        let num = i128::from(self.milli) * i128::from(unit_price.minor);
        let q = num / 1000;
        let r = num % 1000;
        let rounded = if 2 * r.abs() >= 1000 { q + num.signum() } else { q };
        let minor = i64::try_from(rounded).map_err(|_| MoneyError::Overflow)?;
        Ok(Money { minor, currency: unit_price.currency })
    }
}

impl fmt::Display for Litres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}

impl fmt::Debug for Litres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} L", self.to_wire())
    }
}

impl Serialize for Litres {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Litres {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Litres::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a decimal with at most `exp` fraction digits into an integer scaled by 10^exp.
fn parse_fixed(text: &str, exp: u32) -> Result<i64, MoneyError> {
    let bad = |why| MoneyError::BadDecimal(text.to_string(), why);
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected digits before the decimal point"));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (digits.contains('.') && frac.is_empty()) {
        return Err(bad("expected digits after the decimal point"));
    }
    if frac.len() > exp as usize {
        return Err(bad("too many digits after the decimal point"));
    }
    let scale = 10_i64.pow(exp);
    let w: i64 = whole.parse().map_err(|_| bad("too large"))?;
    let mut f: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad("too large"))? };
    f *= 10_i64.pow(exp - frac.len() as u32);
    let value = w.checked_mul(scale).and_then(|v| v.checked_add(f)).ok_or_else(|| bad("too large"))?;
    Ok(if negative { -value } else { value })
}

fn format_fixed(value: i64, exp: u32, point: char, group: Option<char>) -> String {
    let scale = 10_u64.pow(exp);
    let abs = value.unsigned_abs();
    let whole = (abs / scale).to_string();
    let whole = match group {
        Some(sep) => {
            let mut out = String::with_capacity(whole.len() + whole.len() / 3);
            for (i, c) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i).is_multiple_of(3) {
                    out.push(sep);
                }
                out.push(c);
            }
            out
        }
        None => whole,
    };
    let sign = if value < 0 { "-" } else { "" };
    if exp == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}{point}{:0width$}", abs % scale, width = exp as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(input: &str, expect: Expect) {
        let got = match Money::parse_decimal(input, Currency::TRY) {
            Ok(m) => format!("{} | {} | {}", m.minor, m, m.display_grouped()),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn parses_and_formats_decimal_amounts() {
        check("1234.56", expect!["123456 | 1234.56 TRY | 1.234,56 TRY"]);
        check("0.5", expect!["50 | 0.50 TRY | 0,50 TRY"]);
        check("7", expect!["700 | 7.00 TRY | 7,00 TRY"]);
        check("-12.05", expect!["-1205 | -12.05 TRY | -12,05 TRY"]);
        check("1000000.00", expect!["100000000 | 1000000.00 TRY | 1.000.000,00 TRY"]);
        check(
            "1.234",
            expect!["error: '1.234' is not a valid decimal amount: too many digits after the decimal point"],
        );
        check("12.", expect!["error: '12.' is not a valid decimal amount: expected digits after the decimal point"]);
        check("abc", expect!["error: 'abc' is not a valid decimal amount: expected digits before the decimal point"]);
        check("", expect!["error: '' is not a valid decimal amount: expected digits before the decimal point"]);
        check(
            "99999999999999999999",
            expect!["error: '99999999999999999999' is not a valid decimal amount: too large"],
        );
    }

    #[test]
    fn refuses_mixed_currencies_and_overflow() {
        let a = Money::new(100, Currency::TRY);
        let b = Money::new(100, Currency::EUR);
        assert_eq!(a.checked_add(b), Err(MoneyError::CurrencyMismatch(Currency::TRY, Currency::EUR)));
        assert_eq!(Money::new(i64::MAX, Currency::TRY).checked_add(a), Err(MoneyError::Overflow));
        assert_eq!(a.checked_sub(Money::new(250, Currency::TRY)).unwrap().minor, -150);
        assert_eq!(Money::sum(Currency::TRY, [a, a, a]).unwrap().minor, 300);
    }

    #[test]
    fn vat_included_rounds_half_away_from_zero() {
        // 120.00 at 20 % contains 20.00.
        assert_eq!(Money::new(12_000, Currency::TRY).included_vat(2000).minor, 2000);
        // 1.00 at 20 %: 16.666.. -> 17.
        assert_eq!(Money::new(100, Currency::TRY).included_vat(2000).minor, 17);
        // 0.06 at 20 %: exactly 1.0 -> 1.
        assert_eq!(Money::new(6, Currency::TRY).included_vat(2000).minor, 1);
        assert_eq!(Money::new(-100, Currency::TRY).included_vat(2000).minor, -17);
        assert_eq!(Money::new(12_345, Currency::TRY).included_vat(0).minor, 0);
    }

    #[test]
    fn litres_price_and_wire_form() {
        let l = Litres::parse("41.235").unwrap();
        assert_eq!(l.milli(), 41_235);
        assert_eq!(l.to_wire(), "41.235");
        assert_eq!(Litres::parse("40.5").unwrap().to_wire(), "40.500");
        // 41.235 L at 43.89 TRY/L = 1809.80415 -> 1809.80
        let price = l.price_at(Money::new(4389, Currency::TRY)).unwrap();
        assert_eq!(price.minor, 180_980);
        assert!(Litres::parse("1.2345").is_err());
    }

    #[test]
    fn currency_codes() {
        assert_eq!(Currency::parse("try").unwrap(), Currency::TRY);
        assert!(Currency::parse("TL").is_err());
        assert!(Currency::parse("T1Y").is_err());
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        let m: Money = serde_json::from_str(r#"{"minor":5,"currency":"EUR"}"#).unwrap();
        assert_eq!(m, Money::new(5, Currency::EUR));
        assert!(serde_json::from_str::<Money>(r#"{"minor":5,"currency":"EURO"}"#).is_err());
    }

    #[test]
    fn money_is_written_with_its_exponent_and_read_back_without_it() {
        let m = Money::new(123_456, Currency::TRY);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"minor":123456,"currency":"TRY","exponent":2}"#);
        let jpy = Money::new(1500, Currency::parse("JPY").unwrap());
        assert_eq!(serde_json::to_value(jpy).unwrap()["exponent"], 0);
        let kwd = Money::new(1, Currency::parse("KWD").unwrap());
        assert_eq!(serde_json::to_value(kwd).unwrap()["exponent"], 3);
        let back: Money = serde_json::from_str(r#"{"minor":123456,"currency":"TRY","exponent":2}"#).unwrap();
        assert_eq!(back, m);
        let older: Money = serde_json::from_str(r#"{"minor":5,"currency":"TRY"}"#).unwrap();
        assert_eq!(older, Money::new(5, Currency::TRY), "what was stored before the exponent is still read");
    }
}
