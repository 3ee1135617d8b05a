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
}
