//! Label and field selectors: the `labelSelector` / `fieldSelector` query syntax and the
//! `metav1.LabelSelector` object form.

use serde_json::Value;

use super::error::{ApiError, FieldError};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

impl LabelReq {
    fn key(&self) -> &str {
        match self {
            Self::Exists(k)
            | Self::NotExists(k)
            | Self::In(k, _)
            | Self::NotIn(k, _)
            | Self::Gt(k, _)
            | Self::Lt(k, _) => k,
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

impl LabelSelector {
    /// Parses the query syntax (`app=web,tier in (a,b),!canary`) as apimachinery's
    /// `labels.Parse` does (k8s.io/apimachinery/pkg/labels/selector.go): the same lexer, the
    /// same grammar, keys and values validated, and the same error texts.
    ///
    /// # Errors
    /// A BadRequest with the parser's error (`unable to parse requirement: ...`), as the API
    /// server's query parameter decoding reports it.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut reqs = Parser::new(text).parse().map_err(ApiError::bad_request)?;
        // sort.Sort(ByKey(items)): deterministic order.
        reqs.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(Self { reqs })
    }

    /// Builds a selector from a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    ///
    /// # Errors
    /// A BadRequest when an expression has an unknown operator.
    pub fn from_object(sel: &Value) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(LabelReq::In(
                    k.clone(),
                    vec![v.as_str().unwrap_or_default().to_string()],
                ));
            }
        }
        for expr in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = expr["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = expr["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(ToString::to_string))
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(match expr["operator"].as_str().unwrap_or_default() {
                "In" => LabelReq::In(key, values),
                "NotIn" => LabelReq::NotIn(key, values),
                "Exists" => LabelReq::Exists(key),
                "DoesNotExist" => LabelReq::NotExists(key),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "\"{other}\" is not a valid label selector operator"
                    )));
                }
            });
        }
        Ok(Self { reqs })
    }

    /// Whether the selector has no requirements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `labels` (a JSON object of strings, or null) satisfies every requirement.
    #[must_use]
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// The selector in query syntax, as `metav1.FormatLabelSelector` and the Scale subresource
    /// print it (`app=web,tier in (a,b)`); `<none>` is the caller's business.
    #[must_use]
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .reqs
            .iter()
            .map(|r| match r {
                LabelReq::Exists(k) => k.clone(),
                LabelReq::NotExists(k) => format!("!{k}"),
                LabelReq::In(k, vs) if vs.len() == 1 => format!("{k}={}", vs[0]),
                LabelReq::In(k, vs) => format!("{k} in ({})", sorted(vs).join(",")),
                LabelReq::NotIn(k, vs) => format!("{k} notin ({})", sorted(vs).join(",")),
                LabelReq::Gt(k, n) => format!("{k}>{n}"),
                LabelReq::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect();
        // labels.Selector.String() sorts requirements by key.
        parts.sort();
        parts.join(",")
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Tokens of the label selector lexer (`Token` in labels/selector.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// `string2token`.
fn literal_token(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// The byte lexer of labels/selector.go. Like Go's, it reads a NUL byte as the end of the
/// input.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buffer = Vec::new();
        loop {
            match self.read() {
                0 => break,
                c if is_special_symbol(c) || is_whitespace(c) => {
                    self.unread();
                    break;
                }
                c => buffer.push(c),
            }
        }
        let tok = literal_token(&buffer).unwrap_or(Token::Identifier);
        (tok, String::from_utf8_lossy(&buffer).into_owned())
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut buffer = Vec::new();
        let mut last: Option<(Token, usize)> = None;
        loop {
            match self.read() {
                0 => break,
                c if is_special_symbol(c) => {
                    buffer.push(c);
                    if let Some(tok) = literal_token(&buffer) {
                        last = Some((tok, buffer.len()));
                    } else if last.is_some() {
                        self.unread();
                        break;
                    }
                }
                _ => {
                    self.unread();
                    break;
                }
            }
        }
        // Every special symbol is a token by itself, so `last` is always set.
        match last {
            Some((tok, len)) => (tok, String::from_utf8_lossy(&buffer[..len]).into_owned()),
            None => (Token::EndOfString, String::new()),
        }
    }

    fn lex(&mut self) -> (Token, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        match c {
            0 => (Token::EndOfString, String::new()),
            c if is_special_symbol(c) => {
                self.unread();
                self.scan_special_symbol()
            }
            _ => {
                self.unread();
                self.scan_id_or_keyword()
            }
        }
    }
}

/// Whether `in` and `notin` are operators here or plain values (`ParserContext`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// The recursive descent parser of labels/selector.go.
struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

/// `binaryOperators`, as the operator error lists them.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn new(text: &str) -> Self {
        let mut lexer = Lexer {
            s: text.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Self { items, position: 0 }
    }

    fn in_context(tok: Token, context: Context) -> Token {
        match tok {
            Token::In | Token::NotIn if context == Context::Values => Token::Identifier,
            t => t,
        }
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        let (tok, lit) = self.items[self.position.min(self.items.len() - 1)].clone();
        (Self::in_context(tok, context), lit)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        self.position = (self.position + 1).min(self.items.len() - 1);
        item
    }

    fn parse(&mut self) -> Result<Vec<LabelReq>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let req = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(req);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(reqs),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<LabelReq, String> {
        let (key, unary) = self.parse_key_and_infer_operator()?;
        if let Some(not) = unary {
            return Ok(if not {
                LabelReq::NotExists(key)
            } else {
                LabelReq::Exists(key)
            });
        }
        let op = self.parse_operator()?;
        let values = match op {
            Token::In | Token::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, op, values)
    }

    /// The key, and `Some(negated)` for an existence requirement.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<bool>), String> {
        let (mut tok, mut literal) = self.consume(Context::Values);
        let not = tok == Token::DoesNotExist;
        if not {
            (tok, literal) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let errs = super::validation::qualified_name(&literal);
        if !errs.is_empty() {
            // validateLabelKey: field.Invalid with the parser's nil path.
            return Err(FieldError::invalid_str("<nil>", &literal, errs.join("; ")).to_string());
        }
        let (t, _) = self.lookahead(Context::Values);
        if not || t == Token::EndOfString || t == Token::Comma {
            return Ok((literal, Some(not)));
        }
        Ok((literal, None))
    }

    fn parse_operator(&mut self) -> Result<Token, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        match tok {
            Token::In
            | Token::Equals
            | Token::DoubleEquals
            | Token::GreaterThan
            | Token::LessThan
            | Token::NotIn
            | Token::NotEquals => Ok(tok),
            _ => Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        }
    }

    /// `(a,b,c)` as a sorted set.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set = std::collections::BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(set.into_iter().collect()),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set.into_iter().collect());
                    }
                    if tok2 == Token::Comma {
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// `NewRequirement` for a binary operator: the values are checked, and the errors aggregated
/// as `field.ErrorList.ToAggregate` prints them.
fn new_requirement(key: String, op: Token, values: Vec<String>) -> Result<LabelReq, String> {
    let mut errs: Vec<String> = Vec::new();
    let mut push = |e: FieldError| {
        let text = e.to_string();
        if !errs.contains(&text) {
            errs.push(text);
        }
    };
    let mut bound = None;
    if matches!(op, Token::GreaterThan | Token::LessThan) {
        for (i, v) in values.iter().enumerate() {
            match v.parse::<i64>() {
                Ok(n) => bound = Some(n),
                Err(_) => push(FieldError::invalid_str(
                    format!("values[{i}]"),
                    v,
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                )),
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let problems = super::validation::label_value(v);
        if !problems.is_empty() {
            push(FieldError::invalid_str(
                format!("values[{i}][{key}]"),
                v,
                problems.join("; "),
            ));
        }
    }
    match errs.as_slice() {
        [] => {}
        [one] => return Err(one.clone()),
        many => return Err(format!("[{}]", many.join(", "))),
    }
    Ok(match (op, bound) {
        (Token::In | Token::Equals | Token::DoubleEquals, _) => LabelReq::In(key, values),
        (Token::GreaterThan, Some(n)) => LabelReq::Gt(key, n),
        (Token::LessThan, Some(n)) => LabelReq::Lt(key, n),
        _ => LabelReq::NotIn(key, values),
    })
}

/// One requirement of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    field: String,
    value: String,
    negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<FieldReq>,
}

impl FieldSelector {
    /// Parses `metadata.name=x,status.phase!=Running` as apimachinery's `fields.ParseSelector`
    /// does (k8s.io/apimachinery/pkg/fields/selector.go), then checks each field against
    /// `allowed` (besides `metadata.name` and `metadata.namespace`, which every kind supports),
    /// as the list handler's field label conversion does.
    ///
    /// # Errors
    /// A BadRequest with the parser's error, or naming an unsupported field as the field label
    /// conversion does (pkg/apis/core/v1/conversion.go: `field label not supported: %s`).
    pub fn parse(text: &str, allowed: &[String]) -> Result<Self, ApiError> {
        let mut parts = split_unescaped(text);
        parts.sort();
        let mut reqs = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let Some((field, op, value)) = split_term(part) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            reqs.push(FieldReq {
                field: field.to_string(),
                value: unescape(value).map_err(ApiError::bad_request)?,
                negate: op == "!=",
            });
        }
        // k8s.io/apiserver/pkg/endpoints/handlers/get.go (ListResource) transforms the parsed
        // selector's fields one by one: NewBadRequest of the conversion's error.
        for r in &reqs {
            if r.field != "metadata.name"
                && r.field != "metadata.namespace"
                && !allowed.contains(&r.field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        Ok(Self { reqs })
    }

    /// Whether the selector has no requirements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The value a `metadata.name=x` requirement pins, if any.
    #[must_use]
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// Whether the object satisfies every requirement. Absent fields read as the empty string.
    #[must_use]
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negate
        })
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        cur = &cur[seg];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(m) if path == "source" => m
            .get("component")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// `splitTerms`: splits on commas not escaped by a backslash, keeping the escapes.
fn split_unescaped(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in text.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            out.push(text[start..i].to_string());
            start = i + 1;
        }
    }
    out.push(text[start..].to_string());
    out
}

/// `splitTerm`: the first position where `!=`, `==` or `=` starts.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

/// `UnescapeValue`, with the errors of fields/selector.go (`InvalidEscapeSequence`,
/// `UnescapedRune`, which prints the rune as a number).
fn unescape(v: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut in_slash = false;
    for c in v.chars() {
        if in_slash {
            if matches!(c, '\\' | ',' | '=') {
                out.push(c);
            } else {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                ));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front", "n": "5"});
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,api)", true),
            ("tier notin (front)", false),
            ("app,!canary", true),
            ("!app", false),
            ("n>3,n<9", true),
            ("app=web,tier=back", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&labels),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a in b").is_err());
        let obj = LabelSelector::from_object(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}))
        .unwrap();
        assert!(obj.matches(&labels));
        assert_eq!(obj.to_query(), "app=web,tier in (front,x)");
    }

    #[test]
    fn label_selector_grammar_edges() {
        let labels = json!({"x": "in", "n": "5"});
        // `in` and `notin` are values inside parentheses.
        assert!(
            LabelSelector::parse("x in (in,notin)")
                .unwrap()
                .matches(&labels)
        );
        // `()` is the empty value; whitespace separates tokens.
        assert!(
            LabelSelector::parse("y in ()")
                .unwrap()
                .matches(&json!({"y": ""}))
        );
        assert!(
            LabelSelector::parse("  x   =in ,  n>4")
                .unwrap()
                .matches(&labels)
        );
        assert_eq!(
            LabelSelector::parse("n>-a").unwrap_err().message,
            "unable to parse requirement: [values[0]: Invalid value: \"-a\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][n]: Invalid value: \"-a\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]"
        );
        assert_eq!(
            LabelSelector::parse("a b").unwrap_err().message,
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            LabelSelector::parse("a in (b c)").unwrap_err().message,
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            LabelSelector::parse("example.com/").unwrap_err().message,
            "unable to parse requirement: <nil>: Invalid value: \"example.com/\": name part must be non-empty; name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        // A NUL byte ends a token as the end of the input does.
        assert_eq!(
            LabelSelector::parse("a\0b").unwrap_err().message,
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(LabelSelector::parse("b,a=1").unwrap().to_query(), "a=1,b");
    }

    #[test]
    fn field_selectors() {
        let allowed = vec![
            "status.phase".to_string(),
            "involvedObject.name".to_string(),
        ];
        let pod =
            json!({"metadata": {"name": "p", "namespace": "d"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse("metadata.name=p,status.phase=Running", &allowed)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("status.phase!=Running", &allowed)
                .unwrap()
                .matches(&pod)
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=p", &allowed)
                .unwrap()
                .pinned_name(),
            Some("p")
        );
        let err = FieldSelector::parse("spec.foo=x", &allowed).unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
