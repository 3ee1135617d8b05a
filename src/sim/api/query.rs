//! Query strings of API requests.

use std::collections::HashMap;

use crate::sim::store::ApiError;
use crate::sim::store::error::go_quote;

/// Decoded query parameters (the last value of a repeated key wins).
#[derive(Debug, Clone, Default)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    /// Parses `a=1&b=x%20y`.
    #[must_use]
    pub fn parse(query: Option<&str>) -> Self {
        let mut params = HashMap::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode(k), decode(v));
        }
        Self { params }
    }

    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The value of `key` when present and not empty.
    #[must_use]
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Whether `key` is set to true as the API server reads a `bool` option (`watch`, `force`,
    /// `follow`...): present and neither `0` nor `false` in any case, so the Python client's
    /// `watch=True` watches (k8s.io/apimachinery/pkg/runtime/conversion.go
    /// `Convert_Slice_string_To_bool`).
    #[must_use]
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// `key` as an integer, when it parses.
    #[must_use]
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// `key` as the API server's query parameter conversion reads an `int64` or `*int64`
    /// option (`limit`, `timeoutSeconds`, `gracePeriodSeconds`, `tailLines`...): absent is
    /// `None`, anything else goes through Go's `strconv.ParseInt(v, 10, 64)`, empty included.
    ///
    /// # Errors
    /// A BadRequest with the `strconv` error, as the handlers wrap a parameter decoding error
    /// (k8s.io/apiserver/pkg/endpoints/handlers/get.go and delete.go:
    /// `errors.NewBadRequest(err.Error())` of `ParameterCodec.DecodeParameters`, whose int64
    /// conversion is k8s.io/apimachinery/pkg/runtime/conversion.go `Convert_Slice_string_To_int64`).
    pub fn int64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_int64(v).map(Some).map_err(ApiError::bad_request),
        }
    }
}

/// Go's `strconv.ParseInt(text, 10, 64)`, with its error text.
///
/// # Errors
/// `strconv.ParseInt: parsing "<text>": invalid syntax` or `...: value out of range`.
pub fn parse_int64(text: &str) -> Result<i64, String> {
    // src/strconv/atoi.go (ParseInt over ParseUint, syntaxError, rangeError).
    let fail = |why: &str| format!("strconv.ParseInt: parsing {}: {why}", go_quote(text));
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = scan_uint(digits).map_err(fail)?;
    if negative {
        if magnitude > i64::MIN.unsigned_abs() {
            return Err(fail(OUT_OF_RANGE));
        }
        Ok(0i64.wrapping_sub_unsigned(magnitude))
    } else {
        i64::try_from(magnitude).map_err(|_| fail(OUT_OF_RANGE))
    }
}

/// A `resourceVersion` parameter as the storage layer parses it.
///
/// # Errors
/// A BadRequest naming the parameter and the `strconv` error
/// (k8s.io/apiserver/pkg/storage/api_object_versioner.go, `ParseResourceVersion`).
pub fn resource_version(text: &str) -> Result<u64, ApiError> {
    parse_uint64(text).map_err(|e| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {}: {e}",
            go_quote(text)
        ))
    })
}

/// Go's `strconv.ParseUint(text, 10, 64)`, with its error text.
///
/// # Errors
/// `strconv.ParseUint: parsing "<text>": invalid syntax` or `...: value out of range`.
pub fn parse_uint64(text: &str) -> Result<u64, String> {
    scan_uint(text).map_err(|why| format!("strconv.ParseUint: parsing {}: {why}", go_quote(text)))
}

const INVALID_SYNTAX: &str = "invalid syntax";
const OUT_OF_RANGE: &str = "value out of range";

/// The digit loop of Go's `ParseUint` (base 10): a non-digit is a syntax error, and an
/// overflow ends the scan as a range error at once.
fn scan_uint(digits: &str) -> Result<u64, &'static str> {
    if digits.is_empty() {
        return Err(INVALID_SYNTAX);
    }
    let mut n: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return Err(INVALID_SYNTAX);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(OUT_OF_RANGE)?;
    }
    Ok(n)
}

/// Percent-decodes a query component (`+` is a space).
#[must_use]
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&limit=5&x=%",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.int("limit"), Some(5));
        assert_eq!(q.get("x"), Some("%"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn booleans_read_as_the_api_server_converts_them() {
        let q = Query::parse(Some("a=True&b=0&c=FALSE&d=&e=yes&f=false"));
        assert!(q.flag("a"));
        assert!(!q.flag("b"));
        assert!(!q.flag("c"));
        assert!(q.flag("d"));
        assert!(q.flag("e"));
        assert!(!q.flag("f"));
        assert!(!q.flag("missing"));
    }

    #[test]
    fn integers_parse_as_go_strconv_does() {
        assert_eq!(parse_int64("5"), Ok(5));
        assert_eq!(parse_int64("+5"), Ok(5));
        assert_eq!(parse_int64("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int64("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(
            parse_int64("9223372036854775808"),
            Err(r#"strconv.ParseInt: parsing "9223372036854775808": value out of range"#.into())
        );
        assert_eq!(
            parse_int64("99999999999999999999999999999999999999999999"),
            Err(r#"strconv.ParseInt: parsing "99999999999999999999999999999999999999999999": value out of range"#.into())
        );
        for bad in ["", "-", "1e5", " 1", "0x10", "1_0"] {
            assert!(
                parse_int64(bad).unwrap_err().ends_with("invalid syntax"),
                "{bad}"
            );
        }
        assert_eq!(parse_uint64("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_uint64("18446744073709551616"),
            Err(r#"strconv.ParseUint: parsing "18446744073709551616": value out of range"#.into())
        );
        assert!(parse_uint64("-1").unwrap_err().ends_with("invalid syntax"));
        let q = Query::parse(Some("limit=abc&timeoutSeconds=&tailLines=3"));
        assert_eq!(
            q.int64("limit").unwrap_err().message,
            r#"strconv.ParseInt: parsing "abc": invalid syntax"#
        );
        assert!(q.int64("timeoutSeconds").is_err());
        assert_eq!(q.int64("tailLines").unwrap(), Some(3));
        assert_eq!(q.int64("missing").unwrap(), None);
    }
}
