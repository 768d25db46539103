//! Helpers shared by the layer, code-signing-config and event-source-mapping resources: store
//! errors, Lambda's timestamp formats and their `Marker`/`MaxItems` pagination (a marker is the
//! sort key of the first item of the page it starts).

use crate::LambdaError;

/// Service errors of the store (disk, database): 500s, never the caller's fault.
pub fn store_error(e: impl std::fmt::Display) -> LambdaError {
    LambdaError::service(format!("store: {e}"))
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
pub fn max_items(given: Option<i64>, default: usize, max: usize) -> usize {
    given
        .map(|n| n.clamp(1, max as i64) as usize)
        .unwrap_or(default)
}

/// A List* answer: `items` sorted by their keys, one page of them from `marker` (a key) and
/// `max_items` (`default` when absent, at most `max`), and the `NextMarker` when more follow.
pub fn list_page<T>(
    mut items: Vec<(String, T)>,
    marker: Option<&str>,
    max_items_given: Option<i64>,
    (default, max): (usize, usize),
) -> (Vec<T>, Option<String>) {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(
        items,
        |(k, _)| k.clone(),
        marker,
        max_items(max_items_given, default, max),
    );
    (page.into_iter().map(|(_, v)| v).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn max_items_is_clamped_or_defaulted() {
        assert_eq!(max_items(Some(500), 50, 50), 50);
        assert_eq!(max_items(Some(0), 50, 50), 1);
        assert_eq!(max_items(None, 50, 50), 50);
    }

    #[test]
    fn list_page_sorts_by_key_and_continues_from_the_marker() {
        let items = |keys: &[&str]| -> Vec<(String, String)> {
            keys.iter()
                .map(|k| (k.to_string(), k.to_string()))
                .collect()
        };
        let first = list_page(items(&["c", "a", "b"]), None, Some(2), (50, 50));
        assert_eq!(first, (vec!["a".into(), "b".into()], Some("c".into())));
        let rest = list_page(items(&["c", "a", "b"]), Some("c"), None, (50, 50));
        assert_eq!(rest, (vec!["c".into()], None));
        let capped = list_page(items(&["a", "b"]), None, None, (1, 50));
        assert_eq!(capped.1.as_deref(), Some("b"));
    }
}
