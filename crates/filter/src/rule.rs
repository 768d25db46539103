//! The comparison operators of the pattern language and how each judges one leaf value of a
//! record. String operators never match non-strings and `numeric` never matches non-numbers
//! (a DynamoDB `"N": "101"` is a string), as AWS behaves; `anything-but` matches any value that
//! is not excluded, `null` and other types included.

use std::net::IpAddr;

use serde_json::{Number, Value};

/// One rule of a field's list.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    Exact(Exact),
    Prefix(String),
    /// Lower-cased once at compile time, like the other case-insensitive operands.
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    Numeric(Range),
    Cidr(Cidr),
    Exists(bool),
    AnythingBut(AnythingBut),
}

impl Rule {
    /// Whether this rule accepts `value`, a leaf (never an object or array) of the record.
    /// `exists` is decided by the caller, which knows whether the path has leaves at all.
    pub(crate) fn matches(&self, value: &Value) -> bool {
        match self {
            Rule::Exact(exact) => exact.matches(value),
            Rule::Exists(present) => *present,
            Rule::AnythingBut(but) => but.matches(value),
            Rule::Numeric(range) => value.as_f64().is_some_and(|n| range.contains(n)),
            Rule::Cidr(cidr) => value
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|ip| cidr.contains(ip)),
            _ => {
                let Value::String(s) = value else {
                    return false;
                };
                match self {
                    Rule::Prefix(p) => s.starts_with(p.as_str()),
                    Rule::Suffix(p) => s.ends_with(p.as_str()),
                    Rule::PrefixIgnoreCase(p) => s.to_lowercase().starts_with(p.as_str()),
                    Rule::SuffixIgnoreCase(p) => s.to_lowercase().ends_with(p.as_str()),
                    Rule::EqualsIgnoreCase(p) => s.to_lowercase() == *p,
                    Rule::Wildcard(w) => w.matches(s),
                    _ => false,
                }
            }
        }
    }
}

/// An exact value. Numbers compare by value (`300` matches `300.0` and `3e2`), as EventBridge
/// compares them; strings character by character.
#[derive(Debug, Clone)]
pub(crate) enum Exact {
    /// A string; when it is an IP address it also matches other spellings of that address, as
    /// event-ruler turns such strings into address ranges.
    String(String, Option<IpAddr>),
    Number(Number),
    Bool(bool),
    Null,
}

impl Exact {
    pub(crate) fn string(s: &str) -> Exact {
        Exact::String(s.to_string(), s.parse().ok())
    }

    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Exact::String(want, ip), Value::String(got)) => {
                want == got || ip.is_some_and(|ip| got.parse::<IpAddr>().ok() == Some(ip))
            }
            (Exact::Number(want), Value::Number(got)) => numbers_equal(want, got),
            (Exact::Bool(want), Value::Bool(got)) => want == got,
            (Exact::Null, Value::Null) => true,
            _ => false,
        }
    }
}

/// Integers compare exactly (account ids exceed f64's precision); anything else as f64.
fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `anything-but`: the value must not be any of these. Other types than the excluded ones pass.
#[derive(Debug, Clone)]
pub(crate) enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<Number>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    /// Lower-cased.
    IgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

impl AnythingBut {
    fn matches(&self, value: &Value) -> bool {
        if let (AnythingBut::Numbers(excluded), Value::Number(n)) = (self, value) {
            return !excluded.iter().any(|x| numbers_equal(x, n));
        }
        let Value::String(s) = value else {
            return true;
        };
        match self {
            AnythingBut::Strings(excluded) => !excluded.iter().any(|x| x == s),
            AnythingBut::Numbers(_) => true,
            AnythingBut::Prefix(excluded) => !excluded.iter().any(|p| s.starts_with(p.as_str())),
            AnythingBut::Suffix(excluded) => !excluded.iter().any(|p| s.ends_with(p.as_str())),
            AnythingBut::IgnoreCase(excluded) => {
                let lower = s.to_lowercase();
                !excluded.contains(&lower)
            }
            AnythingBut::Wildcard(excluded) => !excluded.iter().any(|w| w.matches(s)),
        }
    }
}

/// At most this many `*` in one wildcard: AWS refuses more complex wildcards ("Rule is too
/// complex"); its exact measure is not public, this is the bound its examples show.
const MAX_WILDCARDS: usize = 5;

/// A wildcard pattern: literal pieces separated by `*`, each `*` standing for any run of
/// characters (possibly empty). `\*` is a literal star and `\\` a literal backslash.
#[derive(Debug, Clone)]
pub(crate) struct Wildcard {
    pieces: Vec<String>,
}

impl Wildcard {
    pub(crate) fn parse(text: &str) -> Result<Wildcard, String> {
        let mut pieces = vec![String::new()];
        let mut chars = text.chars().enumerate().peekable();
        let mut last_was_star = false;
        while let Some((pos, c)) = chars.next() {
            match c {
                '*' => {
                    if last_was_star {
                        return Err(format!("Consecutive wildcard characters at pos {pos}"));
                    }
                    pieces.push(String::new());
                    last_was_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => push(&mut pieces, escaped),
                    _ => return Err(format!("Invalid escape character at pos {pos}")),
                },
                other => push(&mut pieces, other),
            }
            last_was_star = false;
        }
        if pieces.len() - 1 > MAX_WILDCARDS {
            return Err(
                "Rule is too complex - try using fewer wildcard characters or fewer \
                        repeating character sequences after a wildcard character"
                    .into(),
            );
        }
        Ok(Wildcard { pieces })
    }

    fn matches(&self, s: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return s.is_empty(),
        };
        let Some(mut tail) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return tail.is_empty();
        };
        // Leftmost placement of each middle piece leaves the most room for the ones after it.
        for piece in middle {
            match tail.find(piece.as_str()) {
                Some(at) => tail = &tail[at + piece.len()..],
                None => return false,
            }
        }
        tail.ends_with(last.as_str())
    }
}

fn push(pieces: &mut [String], c: char) {
    if let Some(piece) = pieces.last_mut() {
        piece.push(c);
    }
}

/// A `numeric` condition: `=` or a range with an optional bottom and top.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    /// (bound, inclusive)
    bottom: Option<(f64, bool)>,
    top: Option<(f64, bool)>,
}

impl Range {
    /// Parses `["=", n]`, `[">"|">=", n]`, `["<"|"<=", n]` or `[">"|">=", a, "<"|"<=", b]`,
    /// with event-ruler's messages.
    pub(crate) fn parse(terms: &[Value]) -> Result<Range, String> {
        let mut terms = terms.iter();
        let operator = match terms.next() {
            Some(Value::String(op)) => op.as_str(),
            Some(other) => return Err(format!("Invalid member in numeric match: {other}")),
            None => return Err("Invalid member in numeric match: ]".into()),
        };
        let value = |term: Option<&Value>, op: &str| -> Result<f64, String> {
            let name = if op == "=" { "equals" } else { op };
            term.and_then(Value::as_f64)
                .ok_or_else(|| format!("Value of {name} must be numeric"))
        };
        let too_many = || "Too many elements in numeric expression".to_string();
        match operator {
            "=" | "<" | "<=" => {
                let n = value(terms.next(), operator)?;
                if terms.next().is_some() {
                    return Err(too_many());
                }
                Ok(match operator {
                    "=" => Range {
                        bottom: Some((n, true)),
                        top: Some((n, true)),
                    },
                    _ => Range {
                        bottom: None,
                        top: Some((n, operator == "<=")),
                    },
                })
            }
            ">" | ">=" => {
                let bottom = (value(terms.next(), operator)?, operator == ">=");
                let Some(second) = terms.next() else {
                    return Ok(Range {
                        bottom: Some(bottom),
                        top: None,
                    });
                };
                let top_operator = match second {
                    Value::String(op) => op.as_str(),
                    other => return Err(format!("Bad value in numeric range: {other}")),
                };
                if !matches!(top_operator, "<" | "<=") {
                    return Err(format!("Bad numeric range operator: {top_operator}"));
                }
                let top = (value(terms.next(), top_operator)?, top_operator == "<=");
                if terms.next().is_some() {
                    return Err("Too many terms in numeric range expression".into());
                }
                if bottom.0 >= top.0 {
                    return Err("Bottom must be less than top".into());
                }
                Ok(Range {
                    bottom: Some(bottom),
                    top: Some(top),
                })
            }
            other => Err(format!("Unrecognized numeric range operator: {other}")),
        }
    }

    fn contains(&self, n: f64) -> bool {
        let above = self
            .bottom
            .is_none_or(|(b, inclusive)| n > b || (inclusive && n == b));
        let below = self
            .top
            .is_none_or(|(t, inclusive)| n < t || (inclusive && n == t));
        above && below
    }
}

/// A `cidr` block, IPv4 or IPv6. Host bits below the mask are ignored, as event-ruler does.
#[derive(Debug, Clone)]
pub(crate) struct Cidr {
    network: u128,
    mask: u128,
    v6: bool,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Result<Cidr, String> {
        let mut parts = text.split('/');
        let (Some(ip), Some(bits), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("Malformed CIDR, one '/' required".into());
        };
        let bits: i64 = bits
            .parse()
            .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
        if bits < 0 {
            return Err("Malformed CIDR, mask bits must not be negative".into());
        }
        let address: IpAddr = ip
            .parse()
            .map_err(|_| format!("Nonstandard IP address: {ip}"))?;
        let (value, width, v6) = match address {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32, false),
            IpAddr::V6(a) => (u128::from(a), 128, true),
        };
        if bits >= width {
            let family = if v6 { "IPv6" } else { "IPv4" };
            return Err(format!("{family} mask bits must be < {width}"));
        }
        let host_bits = width - bits;
        let mask = if v6 {
            !((1u128 << host_bits) - 1)
        } else {
            !((1u128 << host_bits) - 1) & u128::from(u32::MAX)
        };
        Ok(Cidr {
            network: value & mask,
            mask,
            v6,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let value = match (ip, self.v6) {
            (IpAddr::V4(a), false) => u128::from(u32::from(a)),
            (IpAddr::V6(a), true) => u128::from(a),
            _ => return false,
        };
        value & self.mask == self.network
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wildcard(p: &str) -> Wildcard {
        Wildcard::parse(p).unwrap()
    }

    #[test]
    fn wildcard_stars_match_any_run_of_characters() {
        let w = wildcard("arn:aws:events:us-east-1:*:event-bus/*");
        assert!(w.matches("arn:aws:events:us-east-1:123456789012:event-bus/myEventBus"));
        assert!(w.matches("arn:aws:events:us-east-1::event-bus/"));
        assert!(!w.matches("arn:aws:events:us-west-2:123456789012:event-bus/myEventBus"));
        let w = wildcard("/Users/*/dir/dir/dir/dir/dir/doc.txt");
        assert!(w.matches("/Users/ls_user/dir/dir/dir/dir/dir/doc.txt"));
        assert!(!w.matches("/Users/ls_user/dir/dir/dir/dir/otherdir/doc.txt"));
        assert!(wildcard("*.png").matches("image.png"));
        assert!(!wildcard("*.png").matches("image.jpg"));
        assert!(wildcard("a*b*a").matches("aba"));
        assert!(!wildcard("a*b*a").matches("ab"));
        assert!(wildcard("").matches(""));
        assert!(!wildcard("").matches("x"));
        assert!(wildcard("*").matches(""));
    }

    #[test]
    fn wildcard_escapes_stand_for_literal_characters() {
        let w = wildcard(r"a\*b*");
        assert!(w.matches("a*bcd"));
        assert!(!w.matches("axbcd"));
        assert!(wildcard(r"c:\\*").matches(r"c:\temp"));
        assert_eq!(
            Wildcard::parse(r"a\b").unwrap_err(),
            "Invalid escape character at pos 1"
        );
        assert_eq!(
            Wildcard::parse("arn:aws:events:us-east-1:**:event-bus/*").unwrap_err(),
            "Consecutive wildcard characters at pos 26"
        );
        assert!(Wildcard::parse("*:*:*:*:*:event-bus/*")
            .unwrap_err()
            .starts_with("Rule is too complex"));
    }

    #[test]
    fn numeric_ranges_follow_their_operators() {
        let r = |t: Value| Range::parse(t.as_array().unwrap());
        let range = r(json!([">", 0, "<=", 5])).unwrap();
        assert!(!range.contains(0.0));
        assert!(range.contains(0.1));
        assert!(range.contains(5.0));
        assert!(!range.contains(5.01));
        let eq = r(json!(["=", 301.8])).unwrap();
        assert!(eq.contains(301.8));
        assert!(!eq.contains(301.0));
        assert!(r(json!([">=", 100, "<", 200])).unwrap().contains(100.0));
        assert!(!r(json!([">=", 100, "<", 200])).unwrap().contains(200.0));
        assert!(r(json!(["<", 100])).unwrap().contains(-1e9));
        for (terms, why) in [
            (json!([">", 0, ">", 0]), "Bad numeric range operator: >"),
            (json!([">", 0, "<"]), "Value of < must be numeric"),
            (json!(["=", "5"]), "Value of equals must be numeric"),
            (
                json!(["=", 5, "<", 6]),
                "Too many elements in numeric expression",
            ),
            (
                json!(["<", 5, ">", 6]),
                "Too many elements in numeric expression",
            ),
            (
                json!([">", 5, "<", 6, 7]),
                "Too many terms in numeric range expression",
            ),
            (json!([">", 6, "<", 5]), "Bottom must be less than top"),
            (json!(["!=", 5]), "Unrecognized numeric range operator: !="),
            (json!([5]), "Invalid member in numeric match: 5"),
            (json!([]), "Invalid member in numeric match: ]"),
            (json!([">", 1, 2]), "Bad value in numeric range: 2"),
        ] {
            assert_eq!(r(terms.clone()).unwrap_err(), why, "{terms}");
        }
    }

    #[test]
    fn cidr_blocks_contain_their_addresses_only() {
        let v4 = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(v4.contains("10.0.0.255".parse().unwrap()));
        assert!(!v4.contains("10.0.1.0".parse().unwrap()));
        assert!(!v4.contains("::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8:1234:1a00::/64").unwrap();
        assert!(v6.contains("2001:0db8:1234:1a00:0000:0000:0000:0000".parse().unwrap()));
        assert!(!v6.contains("2001:0db8:123f:1a01::".parse().unwrap()));
        // Host bits are masked away rather than refused.
        assert!(Cidr::parse("10.0.0.7/8")
            .unwrap()
            .contains("10.9.9.9".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for (text, why) in [
            ("bad-filter", "Malformed CIDR, one '/' required"),
            (
                "bad-/64filter",
                "Malformed CIDR, mask bits must be an integer",
            ),
            ("xx.11.xx/8", "Nonstandard IP address: xx.11.xx"),
            (
                "xxxx:db8:1234:1a00::/64",
                "Nonstandard IP address: xxxx:db8:1234:1a00::",
            ),
            ("10.0.0.0/32", "IPv4 mask bits must be < 32"),
            ("::/128", "IPv6 mask bits must be < 128"),
            (
                "10.0.0.0/-1",
                "Malformed CIDR, mask bits must not be negative",
            ),
        ] {
            assert_eq!(Cidr::parse(text).unwrap_err(), why, "{text}");
        }
    }

    #[test]
    fn exact_numbers_compare_by_value_and_strings_by_text() {
        let n = |v: Value| match v {
            Value::Number(n) => Exact::Number(n),
            _ => unreachable!(),
        };
        assert!(n(json!(300)).matches(&json!(300.0)));
        assert!(n(json!(3e2)).matches(&json!(300)));
        assert!(!n(json!(300)).matches(&json!("300")));
        assert!(!n(json!(123456789012345678_u64)).matches(&json!(123456789012345679_u64)));
        assert!(Exact::string("300").matches(&json!("300")));
        assert!(!Exact::string("300").matches(&json!(300)));
        assert!(!Exact::string("a").matches(&json!("A")));
        assert!(Exact::string("::1").matches(&json!("0:0:0:0:0:0:0:1")));
        assert!(Exact::Null.matches(&json!(null)));
        assert!(!Exact::Null.matches(&json!("null")));
    }

    #[test]
    fn anything_but_passes_other_types_and_null() {
        let strings = AnythingBut::Strings(vec!["stopped".into()]);
        assert!(!strings.matches(&json!("stopped")));
        assert!(strings.matches(&json!("pending")));
        assert!(strings.matches(&json!(null)));
        assert!(strings.matches(&json!(5)));
        let numbers = AnythingBut::Numbers(vec![Number::from(100)]);
        assert!(!numbers.matches(&json!(100.0)));
        assert!(numbers.matches(&json!(101)));
        assert!(numbers.matches(&json!("100")));
        let prefix = AnythingBut::Prefix(vec!["init".into()]);
        assert!(!prefix.matches(&json!("init-prefix")));
        assert!(prefix.matches(&json!("post-init")));
        assert!(prefix.matches(&json!(12)));
        let ignore_case = AnythingBut::IgnoreCase(vec!["initializing".into()]);
        assert!(!ignore_case.matches(&json!("INITIALIZING")));
        assert!(ignore_case.matches(&json!("pending")));
    }

    #[test]
    fn string_operators_never_match_other_types() {
        for rule in [
            Rule::Prefix("1".into()),
            Rule::Suffix("1".into()),
            Rule::EqualsIgnoreCase("1".into()),
            Rule::Wildcard(wildcard("*")),
            Rule::Cidr(Cidr::parse("0.0.0.0/0").unwrap()),
        ] {
            assert!(!rule.matches(&json!(1)), "{rule:?}");
            assert!(!rule.matches(&json!(null)), "{rule:?}");
        }
        let numeric = Rule::Numeric(Range::parse(&[json!(">"), json!(100)]).unwrap());
        assert!(numeric.matches(&json!(101.0)));
        assert!(!numeric.matches(&json!("300")));
        assert!(!numeric.matches(&json!(null)));
    }

    #[test]
    fn case_insensitive_operators_fold_both_sides() {
        assert!(Rule::PrefixIgnoreCase("eventb".into()).matches(&json!("EvEnTbridge")));
        assert!(Rule::SuffixIgnoreCase(".png".into()).matches(&json!("image.PNG")));
        assert!(!Rule::SuffixIgnoreCase(".png".into()).matches(&json!("image.jpg")));
        assert!(Rule::EqualsIgnoreCase("".into()).matches(&json!("")));
        assert!(!Rule::EqualsIgnoreCase("".into()).matches(&json!("x")));
    }
}
