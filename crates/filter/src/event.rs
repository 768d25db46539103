//! A record seen as AWS's engine sees it: its leaves (strings, numbers, booleans, nulls) by
//! dotted path, arrays crushed out, each leaf remembering which element of which array it came
//! from. A pattern matches when every field finds a leaf and no two chosen leaves sit in
//! different elements of the same array — so `{"a": {"b": [1], "c": [2]}}` does not match
//! `{"a": [{"b": 1}, {"c": 2}]}`, as event-ruler's `rulesForJSONEvent` decides.

use std::collections::HashMap;

use serde_json::Value;

use crate::pattern::{Field, Node, Pattern};

/// The element a leaf was found in, for one array on its way from the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Membership {
    array: u32,
    index: u32,
}

#[derive(Debug)]
struct Leaf<'a> {
    value: &'a Value,
    memberships: Vec<Membership>,
}

/// The leaves of a record at the paths some pattern names.
#[derive(Debug, Default)]
pub(crate) struct Leaves<'a> {
    by_path: HashMap<String, Vec<Leaf<'a>>>,
    arrays: u32,
}

/// Backtracking steps one match may take before giving up (as "no match"): patterns with many
/// `$or` branches over records with many array elements could otherwise take exponential time.
const STEP_BUDGET: u32 = 100_000;

impl<'a> Leaves<'a> {
    /// Adds the leaves of `value`, found at `path` (empty for the record itself). `wanted` says
    /// whether a path is named by a pattern or leads to one that is.
    pub(crate) fn add(&mut self, value: &'a Value, path: &str, wanted: &dyn Fn(&str) -> bool) {
        self.walk(value, path.to_string(), &mut Vec::new(), wanted);
    }

    fn walk(
        &mut self,
        value: &'a Value,
        path: String,
        memberships: &mut Vec<Membership>,
        wanted: &dyn Fn(&str) -> bool,
    ) {
        match value {
            Value::Object(object) => {
                for (key, child) in object {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if wanted(&child_path) {
                        self.walk(child, child_path, memberships, wanted);
                    }
                }
            }
            Value::Array(items) => {
                let array = self.arrays;
                self.arrays += 1;
                for (index, item) in items.iter().enumerate() {
                    memberships.push(Membership {
                        array,
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                    });
                    self.walk(item, path.clone(), memberships, wanted);
                    memberships.pop();
                }
            }
            _ if path.is_empty() => {}
            _ => self.by_path.entry(path).or_default().push(Leaf {
                value,
                memberships: memberships.clone(),
            }),
        }
    }

    /// Whether `pattern` matches these leaves.
    pub(crate) fn matches(&self, pattern: &Pattern) -> bool {
        let mut search = Search {
            leaves: self,
            chosen: Vec::new(),
            steps: 0,
        };
        let pending: Vec<&Node> = pattern.root.iter().collect();
        search.satisfy(&pending)
    }
}

struct Search<'s, 'a> {
    leaves: &'s Leaves<'a>,
    /// The leaves picked so far for the fields already satisfied.
    chosen: Vec<&'s [Membership]>,
    steps: u32,
}

impl<'s> Search<'s, '_> {
    /// Whether every node of `pending` can be satisfied together with the leaves already chosen.
    fn satisfy(&mut self, pending: &[&Node]) -> bool {
        self.steps += 1;
        if self.steps > STEP_BUDGET {
            return false;
        }
        let Some((node, rest)) = pending.split_first() else {
            return true;
        };
        match node {
            Node::Or(branches) => branches.iter().any(|branch| {
                let mut next: Vec<&Node> = branch.iter().collect();
                next.extend_from_slice(rest);
                self.satisfy(&next)
            }),
            Node::Field(field) => self.satisfy_field(field, rest),
        }
    }

    fn satisfy_field(&mut self, field: &Field, rest: &[&Node]) -> bool {
        let leaves = self.leaves;
        let candidates = leaves
            .by_path
            .get(field.path.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if candidates.is_empty() {
            return field.matches_absent() && self.satisfy(rest);
        }
        for leaf in candidates {
            if !field.rules.iter().any(|r| r.matches(leaf.value)) {
                continue;
            }
            if !self.chosen.iter().all(|c| compatible(c, &leaf.memberships)) {
                continue;
            }
            self.chosen.push(&leaf.memberships);
            let ok = self.satisfy(rest);
            self.chosen.pop();
            if ok {
                return true;
            }
        }
        false
    }
}

/// Two leaves can be matched together unless they are in different elements of one array.
fn compatible(a: &[Membership], b: &[Membership]) -> bool {
    a.iter()
        .all(|x| b.iter().all(|y| x.array != y.array || x.index == y.index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(pattern: &str, event: Value) -> bool {
        let pattern = Pattern::parse(pattern).unwrap();
        let paths = pattern.paths();
        let wanted = |p: &str| {
            paths
                .iter()
                .any(|q| q == p || (q.starts_with(p) && q[p.len()..].starts_with('.')))
        };
        let mut leaves = Leaves::default();
        leaves.add(&event, "", &wanted);
        leaves.matches(&pattern)
    }

    #[test]
    fn an_array_in_the_event_matches_when_any_element_does() {
        let p = r#"{"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]}"#;
        assert!(matches(
            p,
            json!({"resources": ["arn:other", "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]})
        ));
        assert!(!matches(p, json!({"resources": ["arn:other"]})));
        assert!(matches(
            r#"{"detail": {"automations": {"id": [{"exists": true}]}}}"#,
            json!({"detail": {"automations": [{"key1": "v"}, {"id": "x"}, {"key2": "v"}]}})
        ));
    }

    #[test]
    fn fields_from_different_elements_of_one_array_do_not_combine() {
        let p = r#"{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}"#;
        let event = json!({"employees": [
            {"firstName": "John", "lastName": "Doe"},
            {"firstName": "Anna", "lastName": "Smith"},
            {"firstName": "Peter", "lastName": "Jones"}
        ]});
        assert!(!matches(p, event.clone()));
        assert!(matches(
            r#"{"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}"#,
            event
        ));
    }

    #[test]
    fn empty_arrays_and_objects_are_not_leaves() {
        assert!(!matches(
            r#"{"resources": [{"exists": true}]}"#,
            json!({"resources": []})
        ));
        assert!(matches(
            r#"{"resources": [{"exists": false}]}"#,
            json!({"resources": []})
        ));
        assert!(!matches(
            r#"{"resources": [null]}"#,
            json!({"resources": []})
        ));
        // exists only looks at leaves: an object at the path is not there.
        assert!(!matches(
            r#"{"dynamodb": {"presentKey": [{"exists": true}]}}"#,
            json!({"dynamodb": {"presentKey": {"S": "x"}}})
        ));
        assert!(matches(
            r#"{"dynamodb": {"presentKey": {"S": [{"exists": true}]}}}"#,
            json!({"dynamodb": {"presentKey": {"S": "x"}}})
        ));
    }

    #[test]
    fn exists_false_matches_missing_fields_at_any_depth() {
        assert!(matches(
            r#"{"detail": {"level1": {"level2:": {"level3": {"level4": [{"exists": false}]}}}}}"#,
            json!({"detail": {"level1": {"level2": "l2 value"}}})
        ));
        assert!(!matches(
            r#"{"detail": {"level1": {"level2": {"level3": {"level4": [{"exists": false}]}}}}}"#,
            json!({"detail": {"level1": {"level2": {"level3": {"level4": "l4 value"}}}}})
        ));
        // null is a value: the field exists.
        assert!(!matches(
            r#"{"a": [{"exists": false}]}"#,
            json!({"a": null})
        ));
        assert!(matches(r#"{"a": [{"exists": true}]}"#, json!({"a": null})));
    }

    #[test]
    fn a_field_matches_when_any_of_its_rules_does() {
        let p = r#"{"dynamodb": {"NewImage": {"homemade": {"S": [{"anything-but": ["roses"]}, {"exists": false}]}}}}"#;
        assert!(matches(
            p,
            json!({"dynamodb": {"NewImage": {"homemade": {"S": "ABCD"}}}})
        ));
        assert!(matches(
            p,
            json!({"dynamodb": {"NewImage": {"homemade": {"N": "789"}}}})
        ));
        assert!(matches(
            p,
            json!({"dynamodb": {"NewImage": {"purchased": {"N": "789"}}}})
        ));
        assert!(!matches(
            p,
            json!({"dynamodb": {"NewImage": {"homemade": {"S": "roses"}}}})
        ));
    }

    #[test]
    fn anything_but_needs_the_field() {
        let p = r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#;
        assert!(matches(p, json!({"detail": {"state": "pending"}})));
        assert!(matches(p, json!({"detail": {"state": null}})));
        assert!(!matches(p, json!({"detail": {"state": "initializing"}})));
        assert!(!matches(p, json!({"detail": {}})));
    }

    #[test]
    fn or_matches_when_any_branch_does_together_with_the_rest() {
        let p = r#"{"source": ["aws.cloudwatch"], "$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {"namespace": ["AWS/EC2", "AWS/ES"]}
        ]}"#;
        assert!(matches(
            p,
            json!({"source": "aws.cloudwatch", "namespace": "AWS/ES"})
        ));
        assert!(matches(
            p,
            json!({"source": "aws.cloudwatch", "metricName": "ReadLatency"})
        ));
        assert!(!matches(
            p,
            json!({"source": "aws.cloudwatch", "namespace": "AWS/S3"})
        ));
        assert!(!matches(
            p,
            json!({"source": "aws.ec2", "namespace": "AWS/ES"})
        ));
        let nested = r#"{"detail": {"$or": [
            {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
            {"d-count": [{"numeric": ["<", 10]}]},
            {"x-limit": [{"numeric": ["=", 301.8]}]}
        ]}}"#;
        assert!(matches(
            nested,
            json!({"detail": {"c-count": 0, "d-count": 0, "x-limit": 901.8}})
        ));
        assert!(!matches(
            nested,
            json!({"detail": {"c-count": 0, "d-count": 10, "x-limit": 901.8}})
        ));
    }

    #[test]
    fn dotted_keys_match_nested_objects_both_ways() {
        let nested = r#"{"detail": {"state": {"status": ["running"]}}}"#;
        let dotted = r#"{"detail": {"state.status": ["running"]}}"#;
        assert!(matches(
            nested,
            json!({"detail": {"state.status": "running"}})
        ));
        assert!(matches(
            dotted,
            json!({"detail": {"state": {"status": "running"}}})
        ));
        assert!(!matches(
            nested,
            json!({"detail": {"state.status": {"status": "running"}}})
        ));
    }

    #[test]
    fn keys_are_case_sensitive_and_json_in_strings_is_not_parsed() {
        assert!(!matches(r#"{"MY_KEY": ["v"]}"#, json!({"my_key": "v"})));
        assert!(!matches(
            r#"{"detail": {"my-key": ["my-value"]}}"#,
            json!({"detail": "{\"my-key\": \"my-value\"}"})
        ));
    }
}
