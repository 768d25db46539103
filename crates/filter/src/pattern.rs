//! One filter pattern compiled from its JSON text: a tree of fields (dotted paths) and `$or`
//! branches whose leaves are lists of rules. Validation follows AWS's own engine (event-ruler),
//! so a pattern AWS refuses is refused here; the reason is kept in event-ruler's words for logs,
//! while Lambda itself answers every refusal with one message (see `FilterError`).

use serde_json::{Map, Value};

use crate::rule::{AnythingBut, Cidr, Exact, Range, Rule, Wildcard};

/// A compiled pattern: all of `root` must hold for a record to match.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub(crate) root: Vec<Node>,
}

/// A condition on the record: a field's rules, or alternatives of which one must hold.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Field(Field),
    Or(Vec<Vec<Node>>),
}

/// The rules for one leaf path; the field matches when any rule does.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// Keys joined by `.`, as AWS joins them: `{"a": {"b": …}}` and `{"a.b": …}` are one path.
    pub(crate) path: String,
    pub(crate) rules: Vec<Rule>,
}

impl Field {
    /// Whether the field holds when the record has no value at its path (`exists: false`).
    pub(crate) fn matches_absent(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, Rule::Exists(false)))
    }
}

/// Field names event-ruler reserves inside `$or` branches, so a branch cannot be mistaken for a
/// match expression.
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

/// Why a pattern was refused.
type Invalid = String;

impl Pattern {
    /// Compiles a pattern from its JSON text.
    pub(crate) fn parse(text: &str) -> Result<Pattern, Invalid> {
        let value: Value =
            serde_json::from_str(text).map_err(|_| "Filter is not valid JSON".to_string())?;
        let Value::Object(object) = value else {
            return Err("Filter is not an object".into());
        };
        let root = parse_object(&object, "", false)?;
        Ok(Pattern { root })
    }

    /// Every leaf path the pattern names, so an event is flattened only where it is looked at.
    pub(crate) fn paths(&self) -> Vec<String> {
        fn walk(nodes: &[Node], out: &mut Vec<String>) {
            for node in nodes {
                match node {
                    Node::Field(f) => out.push(f.path.clone()),
                    Node::Or(branches) => branches.iter().for_each(|b| walk(b, out)),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Whether the pattern looks at `key` of the record's top level or below it.
    pub(crate) fn names_top_level(&self, key: &str) -> bool {
        self.paths().iter().any(|p| {
            p.strip_prefix(key)
                .is_some_and(|r| r.is_empty() || r.starts_with('.'))
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn parse_object(
    object: &Map<String, Value>,
    prefix: &str,
    in_or: bool,
) -> Result<Vec<Node>, Invalid> {
    if object.is_empty() {
        return Err("Empty objects are not allowed".into());
    }
    let mut nodes = Vec::new();
    for (key, value) in object {
        if key == "$or" {
            nodes.push(parse_or(value, prefix)?);
            continue;
        }
        if in_or && RESERVED_IN_OR.contains(&key.as_str()) {
            return Err(format!(
                "{key} is Ruler reserved fieldName which cannot be used inside $or."
            ));
        }
        let path = join(prefix, key);
        match value {
            Value::Object(child) => nodes.extend(parse_object(child, &path, in_or)?),
            Value::Array(items) => nodes.push(Node::Field(Field {
                rules: parse_rules(items)?,
                path,
            })),
            _ => return Err(format!("\"{key}\" must be an object or an array")),
        }
    }
    Ok(nodes)
}

fn parse_or(value: &Value, prefix: &str) -> Result<Node, Invalid> {
    let Value::Array(items) = value else {
        return Err("It must be an Array followed with $or.".into());
    };
    let mut branches = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(object) = item else {
            return Err("Only JSON object is allowed in array of $or relationship.".into());
        };
        branches.push(parse_object(object, prefix, true)?);
    }
    if branches.len() < 2 {
        return Err("There must have at least 2 Objects in $or relationship.".into());
    }
    Ok(Node::Or(branches))
}

fn parse_rules(items: &[Value]) -> Result<Vec<Rule>, Invalid> {
    if items.is_empty() {
        return Err("Empty arrays are not allowed".into());
    }
    items
        .iter()
        .map(|item| match item {
            Value::Object(expression) => parse_expression(expression),
            Value::String(s) => Ok(Rule::Exact(Exact::string(s))),
            Value::Number(n) => Ok(Rule::Exact(Exact::Number(n.clone()))),
            Value::Bool(b) => Ok(Rule::Exact(Exact::Bool(*b))),
            Value::Null => Ok(Rule::Exact(Exact::Null)),
            Value::Array(_) => {
                Err("Match value must be String, number, true, false, or null".into())
            }
        })
        .collect()
}

/// The single `{ "<operator>": operand }` entry of a match expression.
fn single(expression: &Map<String, Value>) -> Result<(&str, &Value), Invalid> {
    let mut entries = expression.iter();
    let Some((name, operand)) = entries.next() else {
        return Err("Match expression name not found".into());
    };
    if entries.next().is_some() {
        return Err("Only one key allowed in match expression".into());
    }
    Ok((name.as_str(), operand))
}

fn parse_expression(expression: &Map<String, Value>) -> Result<Rule, Invalid> {
    let (name, operand) = single(expression)?;
    match name {
        "exactly" => match operand {
            Value::String(s) => Ok(Rule::Exact(Exact::string(s))),
            _ => Err("exact match pattern must be a string".into()),
        },
        "prefix" | "suffix" => parse_affix(name, operand),
        "equals-ignore-case" => match operand {
            Value::String(s) => Ok(Rule::EqualsIgnoreCase(s.to_lowercase())),
            _ => Err("equals-ignore-case match pattern must be a string".into()),
        },
        "wildcard" => match operand {
            Value::String(s) => Ok(Rule::Wildcard(Wildcard::parse(s)?)),
            _ => Err("wildcard match pattern must be a string".into()),
        },
        "numeric" => match operand {
            Value::Array(terms) => Ok(Rule::Numeric(Range::parse(terms)?)),
            _ => Err("Value of numeric must be an array.".into()),
        },
        "cidr" => match operand {
            // event-ruler words this one as if it were a prefix.
            Value::String(s) => Ok(Rule::Cidr(Cidr::parse(s)?)),
            _ => Err("prefix match pattern must be a string".into()),
        },
        "exists" => match operand {
            Value::Bool(b) => Ok(Rule::Exists(*b)),
            _ => Err("exists match pattern must be either true or false.".into()),
        },
        "anything-but" => parse_anything_but(operand).map(Rule::AnythingBut),
        other => Err(format!("Unrecognized match type {other}")),
    }
}

/// `prefix`/`suffix`: a string, or `{"equals-ignore-case": "<string>"}`.
fn parse_affix(name: &str, operand: &Value) -> Result<Rule, Invalid> {
    let prefix = name == "prefix";
    match operand {
        Value::String(s) if prefix => Ok(Rule::Prefix(s.clone())),
        Value::String(s) => Ok(Rule::Suffix(s.clone())),
        Value::Object(inner) => {
            let (op, value) = single(inner)?;
            if op != "equals-ignore-case" {
                let kind = if prefix { "prefix" } else { "suffix" };
                return Err(format!("Unsupported {kind} pattern: {op}"));
            }
            let Value::String(s) = value else {
                return Err("equals-ignore-case match pattern must be a string".into());
            };
            let lower = s.to_lowercase();
            Ok(if prefix {
                Rule::PrefixIgnoreCase(lower)
            } else {
                Rule::SuffixIgnoreCase(lower)
            })
        }
        _ => Err(format!("{name} match pattern must be a string")),
    }
}

const ANYTHING_BUT_OPERAND: &str =
    "Value of anything-but must be an array or single string/number value.";

fn parse_anything_but(operand: &Value) -> Result<AnythingBut, Invalid> {
    match operand {
        Value::String(s) => Ok(AnythingBut::Strings(vec![s.clone()])),
        Value::Number(n) => Ok(AnythingBut::Numbers(vec![n.clone()])),
        Value::Array(items) => {
            let mut strings = Vec::new();
            let mut numbers = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => strings.push(s.clone()),
                    Value::Number(n) => numbers.push(n.clone()),
                    _ => {
                        return Err(
                            "Inside anything but list, start|null|boolean is not supported.".into(),
                        )
                    }
                }
            }
            match (strings.is_empty(), numbers.is_empty()) {
                (false, true) => Ok(AnythingBut::Strings(strings)),
                (true, false) => Ok(AnythingBut::Numbers(numbers)),
                _ => Err(
                    "Inside anything but list, either all values are number or string, \
                          mixed type is not supported"
                        .into(),
                ),
            }
        }
        Value::Object(inner) => {
            let (op, value) = single(inner)?;
            let strings = anything_but_strings(op, value)?;
            match op {
                "prefix" => Ok(AnythingBut::Prefix(strings)),
                "suffix" => Ok(AnythingBut::Suffix(strings)),
                "equals-ignore-case" => Ok(AnythingBut::IgnoreCase(
                    strings.iter().map(|s| s.to_lowercase()).collect(),
                )),
                "wildcard" => Ok(AnythingBut::Wildcard(
                    strings
                        .iter()
                        .map(|s| Wildcard::parse(s))
                        .collect::<Result<_, _>>()?,
                )),
                other => Err(format!("Unsupported anything-but pattern: {other}")),
            }
        }
        _ => Err(ANYTHING_BUT_OPERAND.into()),
    }
}

/// The operand of `anything-but: {prefix|suffix|equals-ignore-case|wildcard: …}`: a string or a
/// list of strings.
fn anything_but_strings(op: &str, value: &Value) -> Result<Vec<String>, Invalid> {
    let type_error = || -> Invalid {
        match op {
            "equals-ignore-case" => {
                "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not \
                 supported."
                    .into()
            }
            "wildcard" => "wildcard match pattern must be a string".into(),
            "prefix" | "suffix" => "prefix/suffix match pattern must be a string".into(),
            other => format!("Unsupported anything-but pattern: {other}"),
        }
    };
    let items: Vec<&Value> = match value {
        Value::String(_) => vec![value],
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => return Err(ANYTHING_BUT_OPERAND.into()),
        _ => return Err(type_error()),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(type_error());
        };
        if s.is_empty() && matches!(op, "prefix" | "suffix") {
            return Err("Null prefix/suffix not allowed".into());
        }
        out.push(s.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        match Pattern::parse(text) {
            Ok(p) => panic!("{text} was accepted: {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_pattern_must_be_a_json_object() {
        assert_eq!(reason("simple string"), "Filter is not valid JSON");
        assert_eq!(
            reason(r#"[{"eventName": ["INSERT"=123}]"#),
            "Filter is not valid JSON"
        );
        assert_eq!(reason("null"), "Filter is not an object");
        assert_eq!(reason(r#"["a"]"#), "Filter is not an object");
        assert_eq!(reason("{}"), "Empty objects are not allowed");
    }

    #[test]
    fn leaves_must_be_non_empty_arrays() {
        assert_eq!(
            reason(r#"{"eventSource": "aws:sqs"}"#),
            "\"eventSource\" must be an object or an array"
        );
        assert_eq!(
            reason(r#"{"int": 42}"#),
            "\"int\" must be an object or an array"
        );
        assert_eq!(
            reason(r#"{"eventSource": []}"#),
            "Empty arrays are not allowed"
        );
        assert_eq!(reason(r#"{"a": {}}"#), "Empty objects are not allowed");
        assert_eq!(
            reason(r#"{"a": [["x"]]}"#),
            "Match value must be String, number, true, false, or null"
        );
    }

    #[test]
    fn operators_are_case_sensitive_and_known() {
        assert_eq!(
            reason(r#"{"a": [{"EXISTS": true}]}"#),
            "Unrecognized match type EXISTS"
        );
        assert_eq!(
            reason(r#"{"a": [{"NUMERIC": ["=", 5]}]}"#),
            "Unrecognized match type NUMERIC"
        );
        assert_eq!(
            reason(r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#),
            "Only one key allowed in match expression"
        );
        assert_eq!(reason(r#"{"a": [{}]}"#), "Match expression name not found");
    }

    #[test]
    fn operand_types_are_checked() {
        for (pattern, why) in [
            (
                r#"{"a": [{"prefix": 123}]}"#,
                "prefix match pattern must be a string",
            ),
            (
                r#"{"a": [{"prefix": ["x"]}]}"#,
                "prefix match pattern must be a string",
            ),
            (
                r#"{"a": [{"suffix": 1}]}"#,
                "suffix match pattern must be a string",
            ),
            (
                r#"{"a": [{"prefix": {"wildcard": "x"}}]}"#,
                "Unsupported prefix pattern: wildcard",
            ),
            (
                r#"{"a": [{"equals-ignore-case": ["x"]}]}"#,
                "equals-ignore-case match pattern must be a string",
            ),
            (
                r#"{"a": [{"equals-ignore-case": {"prefix": "x"}}]}"#,
                "equals-ignore-case match pattern must be a string",
            ),
            (
                r#"{"a": [{"wildcard": 1}]}"#,
                "wildcard match pattern must be a string",
            ),
            (
                r#"{"a": [{"numeric": 10}]}"#,
                "Value of numeric must be an array.",
            ),
            (
                r#"{"a": [{"cidr": ["x"]}]}"#,
                "prefix match pattern must be a string",
            ),
            (
                r#"{"a": [{"exists": "yes"}]}"#,
                "exists match pattern must be either true or false.",
            ),
        ] {
            assert_eq!(reason(pattern), why, "{pattern}");
        }
    }

    #[test]
    fn anything_but_operands_follow_aws() {
        for (pattern, why) in [
            (r#"{"a": [{"anything-but": null}]}"#, ANYTHING_BUT_OPERAND),
            (r#"{"a": [{"anything-but": true}]}"#, ANYTHING_BUT_OPERAND),
            (
                r#"{"a": [{"anything-but": ["x", null]}]}"#,
                "Inside anything but list, start|null|boolean is not supported.",
            ),
            (
                r#"{"a": [{"anything-but": ["x", 1]}]}"#,
                "Inside anything but list, either all values are number or string, mixed type is not supported",
            ),
            (
                r#"{"a": [{"anything-but": {"prefix": ""}}]}"#,
                "Null prefix/suffix not allowed",
            ),
            (
                r#"{"a": [{"anything-but": {"suffix": [null, ".txt"]}}]}"#,
                "prefix/suffix match pattern must be a string",
            ),
            (
                r#"{"a": [{"anything-but": {"prefix": {"equals-ignore-case": "x"}}}]}"#,
                ANYTHING_BUT_OPERAND,
            ),
            (
                r#"{"a": [{"anything-but": {"equals-ignore-case": [1, 2]}}]}"#,
                "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
            ),
            (
                r#"{"a": [{"anything-but": {"wildcard": [1, "x"]}}]}"#,
                "wildcard match pattern must be a string",
            ),
            (
                r#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#,
                "Unsupported anything-but pattern: numeric",
            ),
        ] {
            assert_eq!(reason(pattern), why, "{pattern}");
        }
        assert!(Pattern::parse(r#"{"a": [{"anything-but": {"wildcard": ""}}]}"#).is_ok());
    }

    #[test]
    fn or_needs_two_object_branches_without_reserved_names() {
        assert_eq!(
            reason(r#"{"$or": [{"a": ["x"]}]}"#),
            "There must have at least 2 Objects in $or relationship."
        );
        assert_eq!(
            reason(r#"{"$or": {"a": ["x"]}}"#),
            "It must be an Array followed with $or."
        );
        assert_eq!(
            reason(r#"{"$or": [{"a": ["x"]}, "b"]}"#),
            "Only JSON object is allowed in array of $or relationship."
        );
        assert_eq!(
            reason(r#"{"$or": [{"numeric": [1]}, {"prefix": ["abc"]}]}"#),
            "numeric is Ruler reserved fieldName which cannot be used inside $or."
        );
    }

    #[test]
    fn nested_keys_and_dotted_keys_give_the_same_path() {
        let nested = Pattern::parse(r#"{"a": {"b": {"c": ["x"]}}, "d": ["y"]}"#).unwrap();
        let dotted = Pattern::parse(r#"{"a.b": {"c": ["x"]}, "d": ["y"]}"#).unwrap();
        assert_eq!(nested.paths(), vec!["a.b.c", "d"]);
        assert_eq!(dotted.paths(), nested.paths());
    }
}
