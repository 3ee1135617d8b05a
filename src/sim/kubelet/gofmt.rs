//! Go's `time.Duration.String()`, which the kubelet uses in its messages (`back-off 1m20s`,
//! `in 1.234s`), and Go's `%q` quoting.

use std::time::Duration;

fn fraction(value: u128, unit: u128, digits: usize) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Formats `d` exactly as Go's `time.Duration.String()` does: `0s`, `313ms`, `1.5µs`,
/// `10s`, `1m20s`, `5m0s`, `1h0m0s`.
#[must_use]
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", fraction(ns, 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", fraction(ns, 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&fraction(s * 1_000_000_000 + sub, 1_000_000_000, 9));
    out.push('s');
    out
}

/// A string as Go's `%q` prints it: in double quotes, with `"` and `\` escaped and control
/// characters written as escapes (strconv.Quote).
#[must_use]
pub fn go_quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let n = u32::from(c);
                let _ = if n < 0x80 {
                    write!(out, "\\x{n:02x}")
                } else {
                    write!(out, "\\u{n:04x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_go_does() {
        assert_eq!(
            go_quote(r#"sh -c redis-cli -a "$P" ping"#),
            r#""sh -c redis-cli -a \"$P\" ping""#
        );
        assert_eq!(go_quote("a\tb\\c\u{1}"), r#""a\tb\\c\x01""#);
    }

    #[test]
    fn matches_go() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(ms(313)), "313ms");
        assert_eq!(go_duration(ms(1_594)), "1.594s");
        assert_eq!(go_duration(s(10)), "10s");
        assert_eq!(go_duration(s(80)), "1m20s");
        assert_eq!(go_duration(s(160)), "2m40s");
        assert_eq!(go_duration(s(300)), "5m0s");
        assert_eq!(go_duration(s(3600)), "1h0m0s");
        assert_eq!(go_duration(ms(3_723_500)), "1h2m3.5s");
    }
}
