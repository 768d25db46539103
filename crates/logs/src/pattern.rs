//! CloudWatch Logs filter patterns (`FilterLogEvents.filterPattern`, live tail, metric filters):
//! terms and quoted phrases (`ERROR "not found"`, `?ERROR ?WARN`, `ERROR -Exiting`), JSON
//! patterns (`{ $.user.id = 1 && $.level IS NULL }`) and space-delimited patterns
//! (`[ip, user, ..., status = 4*, bytes > 1000]`), parsed once and matched against each message.

use serde_json::Value;

/// Why a pattern was refused (AWS answers `InvalidParameterException: Invalid filter pattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid character(s) in term '{0}'")]
pub struct PatternError(pub String);

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterPattern {
    /// An empty pattern: every event.
    All,
    Terms(Terms),
    Json(Expr),
    Delimited(Vec<Field>),
}

/// Terms of a text pattern: all of `required`, at least one of `any` (when there are some),
/// none of `excluded`. Matching is case-sensitive, on substrings, as CloudWatch's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Terms {
    pub required: Vec<String>,
    pub any: Vec<String>,
    pub excluded: Vec<String>,
}

/// A comparison operator of JSON and space-delimited patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal a selector is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    /// A string, possibly with `*` wildcards.
    Text(String),
}

/// A boolean expression of a JSON pattern (and of a delimited field's conditions).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Selector, Op, Literal),
    IsNull(Selector),
    IsTrue(Selector),
    IsFalse(Selector),
    Exists(Selector),
    NotExists(Selector),
}

/// `$.a.b[0].c` (JSON) or a field name (delimited patterns).
#[derive(Debug, Clone, PartialEq)]
pub struct Selector(pub Vec<Step>);

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// `[*]` or `.*`: every element.
    Any,
}

/// One field of a space-delimited pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `...`: any number of fields.
    Ellipsis,
    /// A named field, with the conditions written in its position (if any).
    Named {
        name: String,
        condition: Option<Expr>,
    },
}

impl FilterPattern {
    /// Parses a pattern as CloudWatch reads it.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let p = pattern.trim();
        if p.is_empty() || p == "\"\"" {
            return Ok(Self::All);
        }
        if let Some(inner) = p.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| PatternError(p.to_string()))?;
            let tokens = lex(inner)?;
            let mut parser = Parser { tokens, pos: 0 };
            let expr = parser.or()?;
            if parser.pos != parser.tokens.len() {
                return Err(PatternError(p.to_string()));
            }
            return Ok(Self::Json(expr));
        }
        if let Some(inner) = p.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| PatternError(p.to_string()))?;
            return parse_delimited(inner).map(Self::Delimited);
        }
        parse_terms(p).map(Self::Terms)
    }

    /// Whether a log event's message matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Self::All => true,
            Self::Terms(t) => t.matches(message),
            Self::Json(expr) => match serde_json::from_str::<Value>(message.trim()) {
                Ok(v) if v.is_object() || v.is_array() => eval(expr, &|s| resolve(&v, s)),
                _ => false,
            },
            Self::Delimited(fields) => match_delimited(fields, message),
        }
    }
}

impl Terms {
    fn matches(&self, message: &str) -> bool {
        self.required.iter().all(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
    }
}

fn parse_terms(p: &str) -> Result<Terms, PatternError> {
    let mut terms = Terms::default();
    let mut chars = p.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let kind = match first {
            '?' | '-' => {
                chars.next();
                first
            }
            _ => ' ',
        };
        let term = if chars.peek() == Some(&'"') {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('\\') => s.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err(PatternError(p.to_string())),
                }
            }
            s
        } else {
            let mut s = String::new();
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                s.push(c);
            }
            // AWS asks for quotes around terms with characters other than letters, digits and
            // `_`; Flint reads such unquoted terms literally rather than refusing them.
            if s.contains('"') {
                return Err(PatternError(s));
            }
            s
        };
        if term.is_empty() {
            continue;
        }
        match kind {
            '?' => terms.any.push(term),
            '-' => terms.excluded.push(term),
            _ => terms.required.push(term),
        }
    }
    Ok(terms)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Op(Op),
    /// `$.a[0]` or a bare word (field name, unquoted value, IS/NULL/NOT/EXISTS/TRUE/FALSE).
    Word(String),
    Quoted(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, PatternError> {
    let err = || PatternError(s.to_string());
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Tok::LParen);
            }
            ')' => {
                chars.next();
                out.push(Tok::RParen);
            }
            '&' | '|' => {
                chars.next();
                if chars.next() != Some(c) {
                    return Err(err());
                }
                out.push(if c == '&' { Tok::And } else { Tok::Or });
            }
            '=' => {
                chars.next();
                out.push(Tok::Op(Op::Eq));
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err(err());
                }
                out.push(Tok::Op(Op::Ne));
            }
            '<' | '>' => {
                chars.next();
                let eq = chars.next_if_eq(&'=').is_some();
                out.push(Tok::Op(match (c, eq) {
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    _ => Op::Ge,
                }));
            }
            '"' => {
                chars.next();
                let mut q = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => q.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => q.push(c),
                        None => return Err(err()),
                    }
                }
                out.push(Tok::Quoted(q));
            }
            _ => {
                let mut w = String::new();
                while let Some(c) = chars.next_if(|c| {
                    !c.is_whitespace()
                        && !matches!(c, '(' | ')' | '&' | '|' | '=' | '!' | '<' | '>' | '"')
                }) {
                    w.push(c);
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn err(&self) -> PatternError {
        PatternError(format!("{:?}", self.tokens.get(self.pos)))
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, PatternError> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err(self.err());
            }
            return Ok(e);
        }
        let Some(Tok::Word(sel)) = self.next() else {
            return Err(self.err());
        };
        let selector = parse_selector(&sel)?;
        match self.next() {
            Some(Tok::Op(op)) => {
                let lit = match self.next() {
                    Some(Tok::Quoted(q)) => Literal::Text(q),
                    Some(Tok::Word(w)) => match w.parse::<f64>() {
                        Ok(n) => Literal::Number(n),
                        Err(_) => Literal::Text(w),
                    },
                    _ => return Err(self.err()),
                };
                Ok(Expr::Compare(selector, op, lit))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IS") => match self.next() {
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NULL") => Ok(Expr::IsNull(selector)),
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("TRUE") => Ok(Expr::IsTrue(selector)),
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("FALSE") => {
                    Ok(Expr::IsFalse(selector))
                }
                _ => Err(self.err()),
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("EXISTS") => Ok(Expr::Exists(selector)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => match self.next() {
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("EXISTS") => {
                    Ok(Expr::NotExists(selector))
                }
                _ => Err(self.err()),
            },
            _ => Err(self.err()),
        }
    }
}

/// `$.a.b[0][*].c`, or a plain field name in a delimited pattern.
fn parse_selector(s: &str) -> Result<Selector, PatternError> {
    let err = || PatternError(s.to_string());
    let Some(rest) = s.strip_prefix('$') else {
        if s.is_empty() {
            return Err(err());
        }
        return Ok(Selector(vec![Step::Key(s.to_string())]));
    };
    let mut steps = Vec::new();
    let mut rest = rest;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err(err());
            }
            steps.push(if key == "*" {
                Step::Any
            } else {
                Step::Key(key.to_string())
            });
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(err)?;
            let idx = &r[..end];
            steps.push(if idx == "*" {
                Step::Any
            } else {
                Step::Index(idx.parse().map_err(|_| err())?)
            });
            rest = &r[end + 1..];
        } else {
            return Err(err());
        }
    }
    Ok(Selector(steps))
}

/// A value a selector found: JSON values, or a delimited field's text.
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    Json(&'a Value),
    Text(&'a str),
}

fn resolve<'a>(root: &'a Value, sel: &Selector) -> Vec<Found<'a>> {
    let mut cur = vec![root];
    for step in &sel.0 {
        let mut next = Vec::new();
        for v in cur {
            match (step, v) {
                (Step::Key(k), Value::Object(m)) => next.extend(m.get(k)),
                (Step::Index(i), Value::Array(a)) => next.extend(a.get(*i)),
                (Step::Any, Value::Array(a)) => next.extend(a.iter()),
                (Step::Any, Value::Object(m)) => next.extend(m.values()),
                _ => {}
            }
        }
        cur = next;
    }
    cur.into_iter().map(Found::Json).collect()
}

fn eval<'a>(expr: &Expr, lookup: &dyn Fn(&Selector) -> Vec<Found<'a>>) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, lookup) && eval(b, lookup),
        Expr::Or(a, b) => eval(a, lookup) || eval(b, lookup),
        Expr::Compare(sel, op, lit) => lookup(sel).into_iter().any(|f| compare(f, *op, lit)),
        Expr::IsNull(sel) => lookup(sel)
            .into_iter()
            .any(|f| matches!(f, Found::Json(Value::Null))),
        Expr::IsTrue(sel) => lookup(sel)
            .into_iter()
            .any(|f| matches!(f, Found::Json(Value::Bool(true)))),
        Expr::IsFalse(sel) => lookup(sel)
            .into_iter()
            .any(|f| matches!(f, Found::Json(Value::Bool(false)))),
        Expr::Exists(sel) => !lookup(sel).is_empty(),
        Expr::NotExists(sel) => lookup(sel).is_empty(),
    }
}

fn compare(found: Found<'_>, op: Op, lit: &Literal) -> bool {
    let (num, text): (Option<f64>, Option<std::borrow::Cow<'_, str>>) = match found {
        Found::Json(Value::Number(n)) => (n.as_f64(), Some(n.to_string().into())),
        Found::Json(Value::String(s)) => (None, Some(s.as_str().into())),
        Found::Json(Value::Bool(b)) => (None, Some(b.to_string().into())),
        Found::Json(_) => (None, None),
        Found::Text(t) => (t.parse().ok(), Some(t.into())),
    };
    match (lit, op) {
        (Literal::Number(n), _) => num.is_some_and(|v| match op {
            Op::Eq => v == *n,
            Op::Ne => v != *n,
            Op::Lt => v < *n,
            Op::Le => v <= *n,
            Op::Gt => v > *n,
            Op::Ge => v >= *n,
        }),
        (Literal::Text(pat), Op::Eq) => text.is_some_and(|t| wildcard(pat, &t)),
        (Literal::Text(pat), Op::Ne) => text.is_some_and(|t| !wildcard(pat, &t)),
        // Ordering is numeric only, as CloudWatch's.
        (Literal::Text(_), _) => false,
    }
}

/// `*` matches any run of characters; everything else is literal.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// `ip, user, ..., status = 4* || status = 5*, bytes > 1000`: fields split at top-level commas.
fn parse_delimited(inner: &str) -> Result<Vec<Field>, PatternError> {
    let mut fields = Vec::new();
    for part in split_commas(inner) {
        let part = part.trim();
        if part == "..." {
            fields.push(Field::Ellipsis);
            continue;
        }
        let tokens = lex(part)?;
        let name = match tokens.first() {
            Some(Tok::Word(w)) => w.clone(),
            _ => return Err(PatternError(part.to_string())),
        };
        if name.starts_with('$') {
            return Err(PatternError(part.to_string()));
        }
        let condition = if tokens.len() > 1 {
            let mut p = Parser { tokens, pos: 0 };
            let e = p.or()?;
            if p.pos != p.tokens.len() {
                return Err(PatternError(part.to_string()));
            }
            Some(e)
        } else {
            None
        };
        fields.push(Field::Named { name, condition });
    }
    Ok(fields)
}

fn split_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A message's fields: split at spaces, `"..."` and `[...]` each one field (without the brackets).
fn split_fields(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = message.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            open @ (b'"' | b'[') => {
                let close = if open == b'"' { b'"' } else { b']' };
                let start = i + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == close)
                    .map_or(bytes.len(), |p| start + p);
                out.push(&message[start..end]);
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                out.push(&message[start..i]);
            }
        }
    }
    out
}

fn match_delimited(fields: &[Field], message: &str) -> bool {
    let values = split_fields(message);
    let mut bound: Vec<(&str, &str)> = Vec::new();
    bind(fields, &values, &mut bound)
}

/// Binds fields to values (an ellipsis takes any number), then checks every condition.
fn bind<'a>(fields: &'a [Field], values: &[&'a str], bound: &mut Vec<(&'a str, &'a str)>) -> bool {
    match fields.split_first() {
        None => values.is_empty(),
        Some((Field::Ellipsis, rest)) => (0..=values.len()).any(|skip| {
            let mark = bound.len();
            let ok = bind(rest, &values[skip..], bound);
            bound.truncate(mark);
            ok
        }),
        Some((Field::Named { name, condition }, rest)) => {
            let Some((v, more)) = values.split_first() else {
                return false;
            };
            bound.push((name.as_str(), v));
            let ok = condition.as_ref().is_none_or(|c| {
                eval(c, &|sel: &Selector| match sel.0.as_slice() {
                    [Step::Key(k)] => bound
                        .iter()
                        .rev()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| vec![Found::Text(v)])
                        .unwrap_or_default(),
                    _ => Vec::new(),
                })
            }) && bind(rest, more, bound);
            bound.pop();
            ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        match FilterPattern::parse(p) {
            Ok(p) => p.matches(msg),
            Err(e) => panic!("{p}: {e}"),
        }
    }

    // Examples from "Filter pattern syntax for metric filters, subscription filters, filter log
    // events, and Live Tail" in the CloudWatch Logs User Guide.
    const LOGS: [&str; 3] = [
        "[ERROR 400] BAD REQUEST",
        "[ERROR 401] UNAUTHORIZED REQUEST",
        "[ERROR 419] MISSING ARGUMENTS",
    ];

    fn count(p: &str, logs: &[&str]) -> usize {
        logs.iter().filter(|l| m(p, l)).count()
    }

    #[test]
    fn an_empty_pattern_matches_everything() {
        assert_eq!(count("", &LOGS), 3);
        assert_eq!(count("\"\"", &LOGS), 3);
    }

    #[test]
    fn terms_all_have_to_appear() {
        assert_eq!(count("ERROR", &LOGS), 3);
        assert_eq!(count("ERROR ARGUMENTS", &LOGS), 1);
        assert_eq!(count("\"BAD REQUEST\"", &LOGS), 1);
        assert_eq!(count("error", &LOGS), 0, "case-sensitive");
    }

    #[test]
    fn question_marked_terms_are_alternatives() {
        assert_eq!(count("?ARGUMENTS ?UNAUTHORIZED", &LOGS), 2);
        assert_eq!(count("?BAD ?MISSING ?NOTHERE", &LOGS), 2);
    }

    #[test]
    fn minus_excludes_a_term() {
        assert_eq!(count("ERROR -ARGUMENTS", &LOGS), 2);
        assert_eq!(count("ERROR -\"BAD REQUEST\"", &LOGS), 2);
    }

    #[test]
    fn json_equality_with_strings_and_wildcards() {
        let e = r#"{"eventType":"UpdateTrail","sourceIPAddress":"123.123.1.2","arrayKey":["value","another"],"objectList":[{"name":"a","id":1},{"name":"b","id":2}],"SomeObject":null,"ThisFlag":true,"bandwidth":80,"user":{"id":1,"email":"John.Doe@example.com"},"users":[{"id":2,"email":"John.Doe@example.com"}],"actions":["GET","PUT","DELETE"]}"#;
        assert!(m(r#"{ $.eventType = "UpdateTrail" }"#, e));
        assert!(!m(r#"{ $.eventType = "CreateTrail" }"#, e));
        assert!(m("{ $.sourceIPAddress = 123.123.* }", e));
        assert!(!m("{ $.sourceIPAddress != 123.123.* }", e));
        assert!(m(r#"{ $.arrayKey[0] = "value" }"#, e));
        assert!(m("{ $.objectList[1].id = 2 }", e));
        assert!(m("{ $.SomeObject IS NULL }", e));
        assert!(m("{ $.SomeOtherObject NOT EXISTS }", e));
        assert!(!m("{ $.SomeObject NOT EXISTS }", e));
        assert!(m("{ $.ThisFlag IS TRUE }", e));
        assert!(!m("{ $.ThisFlag IS FALSE }", e));
        assert!(m("{ $.bandwidth > 75 }", e));
        assert!(!m("{ $.bandwidth < 75 }", e));
        assert!(m("{ $.bandwidth >= 80 && $.bandwidth <= 80 }", e));
        assert!(m(
            r#"{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }"#,
            e
        ));
        assert!(m(
            r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "DELETE" }"#,
            e
        ));
        assert!(!m(
            r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }"#,
            e
        ));
        assert!(m(r#"{ $.actions[*] = "PUT" }"#, e));
        assert!(m("{ $.eventType = * }", e));
    }

    #[test]
    fn a_json_pattern_never_matches_text() {
        assert!(!m("{ $.a = 1 }", "plain text a=1"));
    }

    #[test]
    fn space_delimited_patterns_bind_fields_by_position() {
        let line = r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534"#;
        assert!(m(
            "[ip, user, username, timestamp, request, status_code, bytes]",
            line
        ));
        assert!(m(
            "[ip, user, username, timestamp, request = *.gif*, status_code = 2*, bytes > 1000]",
            line
        ));
        assert!(!m(
            "[ip, user, username, timestamp, request, status_code = 4*, bytes]",
            line
        ));
        assert!(m("[..., status_code = 200, bytes]", line));
        assert!(m("[ip = 127.0.0.1, ...]", line));
        assert!(m(
            "[ip, ..., status_code = 4* || status_code = 2*, bytes]",
            line
        ));
        assert!(!m("[ip, user]", line), "too few fields");
        assert!(m("[..., bytes >= 1534 && bytes < 2000]", line));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(FilterPattern::parse("{ $.a = }").is_err());
        assert!(FilterPattern::parse("{ $.a = 1").is_err());
        assert!(FilterPattern::parse("\"unterminated").is_err());
        assert!(FilterPattern::parse("{ $.a === 1 }").is_err());
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(wildcard("4*", "404"));
        assert!(wildcard("*html*", "GET /index.html HTTP"));
        assert!(!wildcard("*html", "GET /index.html HTTP"));
        assert!(wildcard("a*b*c", "aXbYc"));
        assert!(!wildcard("a*b*c", "acb"));
    }
}
