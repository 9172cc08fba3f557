//! Money as an exact decimal: relays report balances as JSON numbers or strings ("12.50",
//! 1250000 quota units), and sums of floats drift. An amount is a whole number of femto-USD
//! (10⁻¹⁵ USD) in an `i128`: exact for any decimal a relay sends with up to 15 places, and
//! room for amounts far beyond any wallet.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Femto-USD per USD.
const SCALE: i128 = 1_000_000_000_000_000;
const PLACES: usize = 15;

/// An exact amount of US dollars (negative amounts allowed: some relays report debt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd(i128);

impl Usd {
    pub const ZERO: Usd = Usd(0);

    /// Whole dollars.
    pub fn dollars(n: i64) -> Self {
        Usd(i128::from(n) * SCALE)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn checked_add(self, other: Usd) -> Option<Usd> {
        self.0.checked_add(other.0).map(Usd)
    }

    pub fn checked_sub(self, other: Usd) -> Option<Usd> {
        self.0.checked_sub(other.0).map(Usd)
    }

    /// This amount divided by `divisor` (a relay's minor units: 500,000 quota units per
    /// dollar, 10,000 for some wallets), rounded toward zero at the last place.
    pub fn divided_by(self, divisor: Usd) -> Option<Usd> {
        if divisor.is_zero() {
            return None;
        }
        // (a / SCALE) / (d / SCALE) * SCALE = a * SCALE / d; widen through the quotient and
        // remainder so `a * SCALE` cannot overflow for any wallet-sized amount.
        let (a, d) = (self.0, divisor.0);
        let whole = a / d;
        let rest = a % d;
        let fraction = rest.checked_mul(SCALE)? / d;
        whole.checked_mul(SCALE)?.checked_add(fraction).map(Usd)
    }

    /// For display and forecasts only (never for sums).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }

    /// Reads a JSON value a relay sent as an amount: a number or a numeric string.
    pub fn from_json(value: &serde_json::Value) -> Option<Usd> {
        match value {
            serde_json::Value::Number(n) => n.to_string().parse().ok(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Why a text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a decimal amount")]
pub struct NotAnAmount(String);

impl FromStr for Usd {
    type Err = NotAnAmount;

    /// Plain decimals and the exponent form JSON numbers may take (`1e-3`, `2.5E+2`); digits
    /// past the fifteenth place are cut off.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || NotAnAmount(text.chars().take(40).collect());
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (
                &text[..at],
                text[at + 1..].parse::<i32>().map_err(|_| bad())?,
            ),
            None => (text, 0),
        };
        let (negative, digits) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
            return Err(bad());
        }
        // Shift the decimal point by the exponent, then keep PLACES fractional digits.
        let mut joined = format!("{int}{frac}");
        let point = i64::try_from(int.len()).map_err(|_| bad())? + i64::from(exponent);
        // Bounded before any padding: an exponent from a relay must not size an allocation.
        if point > MAX_INT_DIGITS {
            return Err(bad());
        }
        if point < -(PLACES as i64) {
            return Ok(Usd(0)); // Below the smallest amount kept.
        }
        if point < 0 {
            joined = "0".repeat(usize::try_from(-point).map_err(|_| bad())?) + &joined;
        }
        let point = usize::try_from(point.max(0)).map_err(|_| bad())?;
        if joined.len() < point + PLACES {
            joined.push_str(&"0".repeat(point + PLACES - joined.len()));
        }
        let kept = &joined[..point + PLACES];
        let kept = kept.trim_start_matches('0');
        let value: i128 = if kept.is_empty() {
            0
        } else {
            kept.parse().map_err(|_| bad())?
        };
        Ok(Usd(if negative { -value } else { value }))
    }
}

/// Whole-dollar digits an amount may have: an `i128` of femto-dollars holds 23.
const MAX_INT_DIGITS: i64 = 23;

impl fmt::Display for Usd {
    /// `12.5`, `0.000001`, `-3`: no trailing zeros, no exponent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE as u128;
        let (whole, fraction) = (abs / scale, abs % scale);
        if fraction == 0 {
            return write!(f, "{sign}{whole}");
        }
        let fraction = format!("{fraction:0PLACES$}");
        write!(f, "{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }
}

/// Stored and sent as a decimal string, so no reader turns it into a float.
impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Usd::from_json(&value)
            .ok_or_else(|| serde::de::Error::custom(format!("{value} is not a decimal amount")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        text.parse().unwrap()
    }

    #[test]
    fn decimals_are_exact_where_floats_drift() {
        let sum = usd("0.1").checked_add(usd("0.2")).unwrap();
        assert_eq!(sum, usd("0.3"));
        assert_eq!(sum.to_string(), "0.3");
        assert_eq!(usd("12.50").to_string(), "12.5");
        assert_eq!(usd("-3").to_string(), "-3");
        assert_eq!(usd("0.000000000000001").to_string(), "0.000000000000001");
        assert_eq!(usd(".5").to_string(), "0.5");
        assert_eq!(usd("7.").to_string(), "7");
    }

    #[test]
    fn huge_exponents_are_refused_or_zero_without_allocating_for_them() {
        for text in [
            "1e400000000",
            "1e2147483000",
            "1e24",
            "99999999999999999999999999",
        ] {
            assert!(text.parse::<Usd>().is_err(), "{text}");
        }
        assert_eq!("1e-2147483000".parse::<Usd>().unwrap(), Usd(0));
        assert_eq!("1e-16".parse::<Usd>().unwrap(), Usd(0));
        assert_eq!("1e-15".parse::<Usd>().unwrap(), Usd(1));
        assert_eq!(
            "1e22".parse::<Usd>().unwrap().to_string(),
            "10000000000000000000000"
        );
    }

    #[test]
    fn json_numbers_in_exponent_form_and_strings_are_read() {
        assert_eq!(usd("1e-3"), usd("0.001"));
        assert_eq!(usd("2.5E+2"), usd("250"));
        assert_eq!(usd("1.5e3"), usd("1500"));
        let values = serde_json::json!([12.34, "56.78", " 9 ", 1e-7, true, null, "n/a"]);
        let read: Vec<Option<String>> = values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Usd::from_json(v).map(|u| u.to_string()))
            .collect();
        assert_eq!(
            read,
            [
                Some("12.34".into()),
                Some("56.78".into()),
                Some("9".into()),
                Some("0.0000001".into()),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn not_amounts_are_refused() {
        for bad in ["", "-", ".", "1.2.3", "12a", "1e", "e5", "--1", "1,5"] {
            assert!(bad.parse::<Usd>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn minor_units_divide_exactly() {
        // New API: 500,000 quota units per dollar.
        let quota = usd("1234567");
        assert_eq!(
            quota.divided_by(usd("500000")).unwrap().to_string(),
            "2.469134"
        );
        assert_eq!(usd("10000").divided_by(usd("10000")), Some(usd("1")));
        assert_eq!(
            usd("1").divided_by(usd("3")).unwrap().to_string(),
            "0.333333333333333"
        );
        assert_eq!(usd("1").divided_by(Usd::ZERO), None);
        assert_eq!(usd("-5").divided_by(usd("2")), Some(usd("-2.5")));
    }

    #[test]
    fn serialised_as_a_string() {
        let json = serde_json::to_string(&usd("12.5")).unwrap();
        assert_eq!(json, "\"12.5\"");
        let back: Usd = serde_json::from_str(&json).unwrap();
        assert_eq!(back, usd("12.5"));
        let from_number: Usd = serde_json::from_str("3.25").unwrap();
        assert_eq!(from_number, usd("3.25"));
    }
}
