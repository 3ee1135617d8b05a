//! Human-written durations such as `90s`, `10m` or `1m30s`.

use std::fmt;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way Kubernetes people write them: `500ms`, `30s`, `10m`, `1h`, `1m30s`.
///
/// On the simulated cluster it is measured on the simulated clock; on real backends on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(StdDuration);

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text was empty.
    #[error("empty duration; expected a number and a unit such as `30s`, `10m` or `1m30s`")]
    Empty,
    /// A number was not followed by a unit, or a unit was not one of ms, s, m, h.
    #[error(
        "invalid duration `{0}`; expected a number and a unit (ms, s, m, h) such as `30s`, `10m` or `1m30s`"
    )]
    Invalid(String),
}

impl Duration {
    /// Wraps a standard duration.
    #[must_use]
    pub const fn new(d: StdDuration) -> Self {
        Self(d)
    }

    /// A whole number of seconds.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }

    /// The standard-library duration.
    #[must_use]
    pub const fn as_std(self) -> StdDuration {
        self.0
    }

    /// Parses `500ms`, `30s`, `10m`, `2h` or a concatenation such as `1h2m3s`.
    ///
    /// ```
    /// use relapse::scenario::Duration;
    /// assert_eq!(Duration::parse("1m30s").unwrap().as_std().as_secs(), 90);
    /// assert_eq!(Duration::parse("90s").unwrap().to_string(), "1m30s");
    /// assert!(Duration::parse("10").is_err());
    /// ```
    ///
    /// # Errors
    /// Returns [`DurationError`] when the text is empty, a number has no unit, or a unit is unknown.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DurationError::Empty);
        }
        let invalid = || DurationError::Invalid(text.to_owned());
        let mut total: u128 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let value: u128 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let millis_per_unit = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(invalid()),
            };
            total = value
                .checked_mul(millis_per_unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(invalid)?;
        }
        let millis = u64::try_from(total).map_err(|_| invalid())?;
        Ok(Self(StdDuration::from_millis(millis)))
    }
}

impl fmt::Display for Duration {
    /// Prints the shortest form that parses back to the same value (`1m30s`, `500ms`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30s`, `10m` or `1m30s`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "invalid duration `{v}`: a bare number has no unit; write `{v}s` or `{v}m`"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "invalid duration `{v}`: a bare number has no unit; write `{v}s` or `{v}m`"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h))+$",
            "description": "A duration such as `500ms`, `30s`, `10m`, `1h` or `1m30s`.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_concatenations() {
        assert_eq!(Duration::parse("500ms").unwrap().as_std().as_millis(), 500);
        assert_eq!(Duration::parse("30s").unwrap().as_std().as_secs(), 30);
        assert_eq!(Duration::parse("10m").unwrap().as_std().as_secs(), 600);
        assert_eq!(Duration::parse("1h2m3s").unwrap().as_std().as_secs(), 3723);
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        assert_eq!(Duration::parse(""), Err(DurationError::Empty));
        assert!(Duration::parse("10").is_err());
        assert!(Duration::parse("10d").is_err());
        assert!(Duration::parse("m").is_err());
        assert!(Duration::parse("99999999999999999999h").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["500ms", "30s", "1m30s", "2h", "1h0m1s"] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
        assert_eq!(Duration::parse("90s").unwrap().to_string(), "1m30s");
    }
}
