//! Kubernetes resource quantities (`500m`, `2`, `16Gi`, `1.5G`, `1e3`).

/// Parses a quantity into thousandths of a unit (millicores for CPU), rounding up as the API
/// does for `MilliValue`. `None` when the text is not a quantity.
#[must_use]
pub fn parse_milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let negative = int.starts_with('-');
    let int = int.trim_start_matches(['+', '-']);
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Value as a fraction: digits / 10^scale.
    let digits: i128 = format!("{int}{frac}").parse().ok().or(Some(0))?;
    let scale = u32::try_from(frac.len()).ok()?;
    let (mul_num, mul_den): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        s if s.starts_with(['e', 'E']) => {
            let exp: u32 = s[1..].parse().ok()?;
            (10i128.checked_pow(exp)?, 1)
        }
        _ => return None,
    };
    let num = digits.checked_mul(mul_num)?.checked_mul(1000)?;
    let den = 10i128.checked_pow(scale)?.checked_mul(mul_den)?;
    let value = (num + den - 1) / den;
    Some(if negative { -value } else { value })
}

/// Parses a quantity into whole units, rounding up (`Value`): bytes for memory.
#[must_use]
pub fn parse_value(text: &str) -> Option<i128> {
    parse_milli(text).map(|m| (m + 999).div_euclid(1000))
}

/// The canonical text of a quantity as the API server writes it back
/// (k8s.io/apimachinery/pkg/api/resource/quantity.go: `ParseQuantity` keeps the suffix's
/// format — none or an SI letter is DecimalSI, `Ki`..`Ei` BinarySI, `e<n>` DecimalExponent —
/// and rounds up to nano precision; `CanonicalizeBytes` writes zero as `0`, BinarySI as the
/// largest whole power of 1024 when the value is a whole number of at least 1024 and as
/// DecimalSI otherwise, decimal formats with trailing zeros folded into an exponent that is a
/// multiple of three; amount.go `AsCanonicalBytes`, suffix.go `constructBytes`).
/// `None` when the text is not a quantity or overflows this representation (left as sent).
#[must_use]
pub fn canonical(text: &str) -> Option<String> {
    #[derive(PartialEq)]
    enum Format {
        DecimalSi,
        BinarySi,
        DecimalExponent,
    }
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let negative = number.starts_with('-');
    let number = number.trim_start_matches(['+', '-']);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut mantissa: i128 = format!("{int}{frac}").parse().ok()?;
    let mut exp = -i32::try_from(frac.len()).ok()?;
    let (format, exp10, pow1024) = match suffix {
        "" => (Format::DecimalSi, 0, 0),
        "n" => (Format::DecimalSi, -9, 0),
        "u" => (Format::DecimalSi, -6, 0),
        "m" => (Format::DecimalSi, -3, 0),
        "k" => (Format::DecimalSi, 3, 0),
        "M" => (Format::DecimalSi, 6, 0),
        "G" => (Format::DecimalSi, 9, 0),
        "T" => (Format::DecimalSi, 12, 0),
        "P" => (Format::DecimalSi, 15, 0),
        "E" => (Format::DecimalSi, 18, 0),
        "Ki" => (Format::BinarySi, 0, 1),
        "Mi" => (Format::BinarySi, 0, 2),
        "Gi" => (Format::BinarySi, 0, 3),
        "Ti" => (Format::BinarySi, 0, 4),
        "Pi" => (Format::BinarySi, 0, 5),
        "Ei" => (Format::BinarySi, 0, 6),
        s if s.starts_with(['e', 'E']) => (Format::DecimalExponent, s[1..].parse().ok()?, 0),
        _ => return None,
    };
    exp += exp10;
    mantissa = mantissa.checked_mul(1024i128.checked_pow(pow1024)?)?;
    // Nano precision, rounded away from zero.
    if exp < -9 {
        let div = 10i128.checked_pow(u32::try_from(-9 - exp).ok()?)?;
        mantissa = (mantissa + div - 1) / div;
        exp = -9;
    }
    if mantissa == 0 {
        return Some("0".to_string());
    }
    let sign = if negative { "-" } else { "" };
    let mut format = format;
    if format == Format::BinarySi {
        let whole = if exp >= 0 {
            mantissa.checked_mul(10i128.checked_pow(u32::try_from(exp).ok()?)?)
        } else {
            let div = 10i128.checked_pow(u32::try_from(-exp).ok()?)?;
            (mantissa % div == 0).then_some(mantissa / div)
        };
        match whole {
            Some(mut v) if v >= 1024 => {
                let mut power = 0;
                while v % 1024 == 0 && power < 6 {
                    v /= 1024;
                    power += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
                return Some(format!("{sign}{v}{suffix}"));
            }
            _ => format = Format::DecimalSi,
        }
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    match exp.rem_euclid(3) {
        1 => {
            mantissa = mantissa.checked_mul(10)?;
            exp -= 1;
        }
        2 => {
            mantissa = mantissa.checked_mul(100)?;
            exp -= 2;
        }
        _ => {}
    }
    let suffix = match (format, exp) {
        (_, 0) => String::new(),
        (Format::DecimalSi, -9) => "n".to_string(),
        (Format::DecimalSi, -6) => "u".to_string(),
        (Format::DecimalSi, -3) => "m".to_string(),
        (Format::DecimalSi, 3) => "k".to_string(),
        (Format::DecimalSi, 6) => "M".to_string(),
        (Format::DecimalSi, 9) => "G".to_string(),
        (Format::DecimalSi, 12) => "T".to_string(),
        (Format::DecimalSi, 15) => "P".to_string(),
        (Format::DecimalSi, 18) => "E".to_string(),
        (_, e) => format!("e{e}"),
    };
    Some(format!("{sign}{mantissa}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("3500m"), Some(3500));
        assert_eq!(parse_milli("0.1"), Some(100));
        assert_eq!(parse_value("16Gi"), Some(17_179_869_184));
        assert_eq!(parse_value("200Mi"), Some(209_715_200));
        assert_eq!(parse_value("1G"), Some(1_000_000_000));
        assert_eq!(parse_value("128974848"), Some(128_974_848));
        assert_eq!(parse_value("1e3"), Some(1000));
        assert_eq!(parse_value("7845568Ki"), Some(8_033_861_632));
        assert_eq!(parse_milli("abc"), None);
        assert_eq!(parse_milli("5Xi"), None);
        assert_eq!(parse_milli(""), None);
    }

    #[test]
    fn canonical_forms() {
        for (given, want) in [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1000", "1k"),
            ("1073741824", "1073741824"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1E", "1E"),
            ("100e-3", "100e-3"),
            ("0", "0"),
            ("0Gi", "0"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129000000", "129M"),
            ("123Mi", "123Mi"),
            ("0.1n", "1n"),
            ("2.5", "2500m"),
            ("1500m", "1500m"),
            ("-1", "-1"),
        ] {
            assert_eq!(canonical(given).as_deref(), Some(want), "{given}");
        }
        assert_eq!(canonical("abc"), None);
        assert_eq!(canonical("1Xi"), None);
    }
}
