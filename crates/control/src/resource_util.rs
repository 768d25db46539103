//! Helpers shared by the layer, code-signing-config and event-source-mapping resources: reading
//! the api crate's JSON input, Lambda's timestamp formats, `Marker`/`MaxItems` pagination, function
//! names and ARNs, and the small view of functions those resources need ([`FunctionDirectory`]).

use serde_json::Value;

use crate::{LambdaError, Scope};

/// What layers, code-signing configs and event source mappings need to know about functions;
/// the functions module implements it.
pub trait FunctionDirectory: Send + Sync {
    /// Whether function `name` exists in `scope` and, when `qualifier` is given, whether it has
    /// that version (`$LATEST`, a published number) or alias.
    fn function_exists(&self, scope: &Scope, name: &str, qualifier: Option<&str>) -> bool;
}

/// A function as a caller designated it: a name, a partial ARN (`123456789012:function:f`) or a
/// full ARN, each optionally with `:qualifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionLocator {
    /// The (account, region) the function lives in: the caller's unless an ARN says otherwise.
    pub scope: Scope,
    pub name: String,
    pub qualifier: Option<String>,
}

impl FunctionLocator {
    /// Parses what the api crate already checked against the model's `FunctionName` pattern.
    pub fn parse(caller: &Scope, name_or_arn: &str) -> Self {
        let parts: Vec<&str> = name_or_arn.split(':').collect();
        let (account, region, rest): (Option<&str>, Option<&str>, &[&str]) = match parts.as_slice()
        {
            ["arn", _partition, "lambda", region, account, "function", rest @ ..] => {
                (Some(account), Some(region), rest)
            }
            [account, "function", rest @ ..] => (Some(account), None, rest),
            rest => (None, None, rest),
        };
        let name = rest.first().copied().unwrap_or_default().to_string();
        let qualifier = rest.get(1).map(|q| q.to_string());
        Self {
            scope: Scope {
                account: account.unwrap_or(&caller.account).to_string(),
                region: region.unwrap_or(&caller.region).to_string(),
            },
            name,
            qualifier,
        }
    }

    pub fn unqualified_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.scope.region, self.scope.account, self.name
        )
    }

    /// The ARN qualified exactly as the caller qualified it.
    pub fn arn(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.unqualified_arn()),
            None => self.unqualified_arn(),
        }
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:<resource>`.
pub fn lambda_arn(scope: &Scope, resource: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:{resource}",
        scope.region, scope.account
    )
}

/// Service errors of the store (disk, database): 500s, never the caller's fault.
pub fn store_error(e: impl std::fmt::Display) -> LambdaError {
    LambdaError::service(format!("store: {e}"))
}

/// A string member, if present and a string.
pub fn opt_str<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// An integer member; the api crate turns URI and query integers into JSON numbers.
pub fn opt_i64(input: &Value, key: &str) -> Option<i64> {
    match input.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn opt_bool(input: &Value, key: &str) -> Option<bool> {
    match input.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A list of strings (non-strings are skipped: the api crate validated the types).
pub fn opt_str_list(input: &Value, key: &str) -> Option<Vec<String>> {
    input.get(key)?.as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

/// Lambda's ISO-8601 timestamps with milliseconds: `2024-05-01T12:00:00.000+0000`.
pub fn iso_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Epoch seconds with millisecond precision, as rest-json renders `timestamp` members.
pub fn epoch_seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// One page of a listing sorted by `key`: the items from `marker` on (a marker is the key of the
/// first item of the page it starts), at most `max_items`, and the marker of the next page.
pub fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    marker: Option<&str>,
    max_items: usize,
) -> (Vec<T>, Option<String>) {
    let max_items = max_items.max(1);
    let mut page = Vec::new();
    let mut next = None;
    for item in items {
        let k = key(&item);
        if marker.is_some_and(|m| k.as_str() < m) {
            continue;
        }
        if page.len() == max_items {
            next = Some(k);
            break;
        }
        page.push(item);
    }
    (page, next)
}

/// `MaxItems` as given, within `1..=max`, or `default`.
pub fn max_items(input: &Value, default: usize, max: usize) -> usize {
    opt_i64(input, "MaxItems")
        .map(|n| n.clamp(1, max as i64) as usize)
        .unwrap_or(default)
}

/// A List* answer: `{ key: items, "NextMarker": marker }`, the marker only when there is more.
/// A List* answer: `items` sorted by their keys, one page of them from the input's `Marker` (a
/// key) and `MaxItems` (`default` when absent, at most `max`), under `output_key` with
/// `NextMarker` when more follow.
pub fn list_page(
    output_key: &str,
    mut items: Vec<(String, Value)>,
    input: &Value,
    (default, max): (usize, usize),
) -> Value {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(
        items,
        |(k, _)| k.clone(),
        opt_str(input, "Marker"),
        max_items(input, default, max),
    );
    page_output(output_key, page.into_iter().map(|(_, v)| v).collect(), next)
}

pub fn page_output(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(key.to_string(), Value::Array(items));
    if let Some(m) = next {
        out.insert("NextMarker".to_string(), m.into());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        Scope {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn function_locator_understands_names_partial_and_full_arns() {
        let l = FunctionLocator::parse(&scope(), "f");
        assert_eq!(l.arn(), "arn:aws:lambda:us-east-1:123456789012:function:f");
        let l = FunctionLocator::parse(&scope(), "f:$LATEST");
        assert_eq!(l.qualifier.as_deref(), Some("$LATEST"));
        assert_eq!(
            l.arn(),
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"
        );
        let l = FunctionLocator::parse(&scope(), "111111111111:function:g:7");
        assert_eq!(
            l.arn(),
            "arn:aws:lambda:us-east-1:111111111111:function:g:7"
        );
        let l = FunctionLocator::parse(
            &scope(),
            "arn:aws:lambda:eu-west-1:222222222222:function:h:al",
        );
        assert_eq!(l.scope.region, "eu-west-1");
        assert_eq!(l.name, "h");
        assert_eq!(
            l.unqualified_arn(),
            "arn:aws:lambda:eu-west-1:222222222222:function:h"
        );
    }

    #[test]
    fn pagination_resumes_at_the_marker() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (p, next) = paginate(items.clone(), |s| s.clone(), None, 2);
        assert_eq!(p, ["a", "b"]);
        assert_eq!(next.as_deref(), Some("c"));
        let (p, next) = paginate(items.clone(), |s| s.clone(), next.as_deref(), 2);
        assert_eq!(p, ["c", "d"]);
        let (p, next) = paginate(items, |s| s.clone(), next.as_deref(), 2);
        assert_eq!(p, ["e"]);
        assert_eq!(next, None);
    }

    #[test]
    fn timestamps_have_lambda_formats() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(iso_timestamp(t), "2024-05-01T12:00:00.500+0000");
        assert_eq!(epoch_seconds(t), 1714564800.5);
    }

    #[test]
    fn input_accessors_tolerate_string_numbers() {
        let v = json!({"A": "12", "B": 3, "C": true, "D": ["x", "y"]});
        assert_eq!(opt_i64(&v, "A"), Some(12));
        assert_eq!(opt_i64(&v, "B"), Some(3));
        assert_eq!(opt_bool(&v, "C"), Some(true));
        assert_eq!(opt_str_list(&v, "D").unwrap(), ["x", "y"]);
        assert_eq!(max_items(&json!({"MaxItems": 500}), 50, 50), 50);
        assert_eq!(max_items(&json!({}), 50, 50), 50);
    }

    #[test]
    fn list_page_sorts_by_key_and_continues_from_the_marker() {
        let items = |keys: &[&str]| -> Vec<(String, Value)> {
            keys.iter().map(|k| (k.to_string(), json!(k))).collect()
        };
        let first = list_page(
            "Things",
            items(&["c", "a", "b"]),
            &json!({"MaxItems": 2}),
            (50, 50),
        );
        assert_eq!(first, json!({"Things": ["a", "b"], "NextMarker": "c"}));
        let rest = list_page(
            "Things",
            items(&["c", "a", "b"]),
            &json!({"Marker": "c"}),
            (50, 50),
        );
        assert_eq!(rest, json!({"Things": ["c"]}));
        let capped = list_page("Things", items(&["a", "b"]), &json!({}), (1, 50));
        assert_eq!(capped["NextMarker"], json!("b"));
    }
}
