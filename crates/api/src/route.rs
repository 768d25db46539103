//! Request routing from the model: every operation's method + `requestUri` template
//! (`/2015-03-31/functions/{FunctionName}/policy/{StatementId}`, greedy `{Resource+}`, literal
//! query parts such as `?find=LayerVersion`) is matched segment by segment against the raw path.

use percent_encoding::percent_decode_str;

use crate::model::Model;

#[derive(Debug)]
enum Segment {
    Literal(String),
    Label { name: String, greedy: bool },
}

#[derive(Debug)]
struct Template {
    op: usize,
    method: http::Method,
    segments: Vec<Segment>,
    /// `?find=LayerVersion` → ("find", Some("LayerVersion")).
    query: Vec<(String, Option<String>)>,
    /// Literal parts count: the most specific template wins among several matches.
    specificity: usize,
}

/// What a request resolved to: the operation's index in the model and its decoded URI labels.
#[derive(Debug, PartialEq)]
pub(crate) struct Matched {
    pub op: usize,
    pub labels: Vec<(String, String)>,
}

pub(crate) struct Routes {
    templates: Vec<Template>,
    /// The Invoke operation's template (the hot path asks for it by name).
    invoke: Option<usize>,
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Query pairs, decoded (`+` is a space, as form decoding has it).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect()
}

impl Routes {
    pub(crate) fn new(model: &Model) -> Self {
        let mut templates = Vec::with_capacity(model.operations.len());
        for (op, o) in model.operations.iter().enumerate() {
            let (path, query) = o
                .request_uri
                .split_once('?')
                .unwrap_or((&o.request_uri, ""));
            let segments: Vec<Segment> = path
                .trim_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(label) => match label.strip_suffix('+') {
                            Some(name) => Segment::Label {
                                name: name.to_string(),
                                greedy: true,
                            },
                            None => Segment::Label {
                                name: label.to_string(),
                                greedy: false,
                            },
                        },
                        None => Segment::Literal(s.to_string()),
                    },
                )
                .collect();
            let query: Vec<(String, Option<String>)> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (p.to_string(), None),
                })
                .collect();
            let specificity = segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count()
                + query.len();
            templates.push(Template {
                op,
                method: o.method.clone(),
                segments,
                query,
                specificity,
            });
        }
        let invoke = templates
            .iter()
            .position(|t| model.operations[t.op].name == "Invoke");
        Self { templates, invoke }
    }

    /// Resolves a request for the Invoke operation alone (`POST
    /// /2015-03-31/functions/{FunctionName}/invocations`): what [`Routes::find`] answers for such
    /// a path, without trying every other template first.
    pub(crate) fn find_invoke(&self, method: &http::Method, path: &str) -> Option<Matched> {
        let t = &self.templates[self.invoke?];
        if t.method != *method {
            return None;
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let parts = match parts.split_last() {
            Some((&"", rest)) => rest,
            _ => &parts[..],
        };
        let labels = match_segments(&t.segments, parts)?;
        Some(Matched { op: t.op, labels })
    }

    /// Resolves a request, or `None` when no operation has this method and path.
    pub(crate) fn find(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
    ) -> Option<Matched> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // A trailing slash (`.../invoke-async/`) names the same resource.
        let parts = match parts.split_last() {
            Some((&"", rest)) => rest,
            _ => &parts[..],
        };
        let mut best: Option<(usize, Matched)> = None;
        for t in self.templates.iter().filter(|t| t.method == *method) {
            let Some(labels) = match_segments(&t.segments, parts) else {
                continue;
            };
            if !t.query.is_empty() {
                let pairs = query.map(query_pairs).unwrap_or_default();
                let all = t.query.iter().all(|(k, v)| {
                    pairs
                        .iter()
                        .any(|(pk, pv)| pk == k && v.as_ref().is_none_or(|v| v == pv))
                });
                if !all {
                    continue;
                }
            }
            if best.as_ref().is_none_or(|(s, _)| t.specificity > *s) {
                best = Some((t.specificity, Matched { op: t.op, labels }));
            }
        }
        best.map(|(_, m)| m)
    }
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Literal(l) => {
                if parts.get(i) != Some(&l.as_str()) {
                    return None;
                }
            }
            Segment::Label { name, greedy: true } => {
                let rest = parts.get(i..)?;
                if rest.is_empty() || rest.iter().all(|p| p.is_empty()) {
                    return None;
                }
                labels.push((name.clone(), decode(&rest.join("/"))));
                return Some(labels);
            }
            Segment::Label {
                name,
                greedy: false,
            } => {
                let part = parts.get(i)?;
                if part.is_empty() {
                    return None;
                }
                labels.push((name.clone(), decode(part)));
            }
        }
    }
    (parts.len() == segments.len()).then_some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MODEL;
    use http::Method;

    fn op_of(
        routes: &Routes,
        m: Method,
        path: &str,
        q: Option<&str>,
    ) -> Option<(String, Vec<(String, String)>)> {
        routes
            .find(&m, path, q)
            .map(|x| (MODEL.operations[x.op].name.clone(), x.labels))
    }

    /// The Invoke shortcut answers exactly what the full search answers, for Invoke paths and
    /// for paths that only look like them.
    #[test]
    fn find_invoke_agrees_with_find() {
        let routes = Routes::new(&MODEL);
        for path in [
            "/2015-03-31/functions/f/invocations",
            "/2015-03-31/functions/f/invocations/",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations",
            "/2015-03-31/functions/my-fn%3Aprod/invocations",
            "/2015-03-31/functions//invocations",
            "/2015-03-31/functions/f/g/invocations",
            "/2015-03-31/functions/f/invocation",
            "/2015-03-31/functions/f/policy",
        ] {
            let full = routes
                .find(&Method::POST, path, None)
                .filter(|m| MODEL.operations[m.op].name == "Invoke");
            assert_eq!(routes.find_invoke(&Method::POST, path), full, "{path}");
            assert_eq!(routes.find_invoke(&Method::GET, path), None, "{path}");
        }
        assert!(routes
            .find_invoke(&Method::POST, "/2015-03-31/functions/f/invocations")
            .is_some());
    }

    /// Fills every label of a template with a sample value and checks it routes back to its op.
    #[test]
    fn every_operation_in_the_model_routes_to_itself() {
        let routes = Routes::new(&MODEL);
        for o in &MODEL.operations {
            let (path, query) = o
                .request_uri
                .split_once('?')
                .unwrap_or((&o.request_uri, ""));
            let mut concrete = String::new();
            for seg in path.split('/').filter(|s| !s.is_empty()) {
                concrete.push('/');
                if seg.starts_with('{') {
                    concrete.push_str(if seg.ends_with("+}") { "a/b" } else { "x1" });
                } else {
                    concrete.push_str(seg);
                }
            }
            let q = (!query.is_empty()).then_some(query);
            let found = op_of(&routes, o.method.clone(), &concrete, q);
            assert_eq!(
                found.map(|f| f.0).as_deref(),
                Some(o.name.as_str()),
                "{} {concrete}",
                o.method
            );
        }
    }

    #[test]
    fn percent_encoded_arns_are_decoded_into_labels() {
        let routes = Routes::new(&MODEL);
        let (op, labels) = op_of(
            &routes,
            Method::POST,
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations",
            None,
        )
        .unwrap();
        assert_eq!(op, "Invoke");
        assert_eq!(
            labels[0].1,
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
    }

    #[test]
    fn literal_query_parts_pick_the_more_specific_operation() {
        let routes = Routes::new(&MODEL);
        let get = |q| {
            op_of(&routes, Method::GET, "/2018-10-31/layers", q)
                .unwrap()
                .0
        };
        assert_eq!(get(None), "ListLayers");
        assert_eq!(get(Some("find=LayerVersion&Arn=x")), "GetLayerVersionByArn");
        let pc = |q| {
            op_of(
                &routes,
                Method::GET,
                "/2019-09-30/functions/f/provisioned-concurrency",
                q,
            )
            .unwrap()
            .0
        };
        assert_eq!(pc(Some("Qualifier=1")), "GetProvisionedConcurrencyConfig");
        assert_eq!(pc(Some("List=ALL")), "ListProvisionedConcurrencyConfigs");
    }

    #[test]
    fn greedy_label_takes_the_rest_of_the_path() {
        let routes = Routes::new(&MODEL);
        let (op, labels) = op_of(
            &routes,
            Method::GET,
            "/2017-03-31/tags/arn:aws:lambda:us-east-1:123456789012:function:f",
            None,
        )
        .unwrap();
        assert_eq!(op, "ListTags");
        assert_eq!(
            labels[0],
            (
                "Resource".into(),
                "arn:aws:lambda:us-east-1:123456789012:function:f".into()
            )
        );
    }

    #[test]
    fn trailing_slash_and_unknown_paths() {
        let routes = Routes::new(&MODEL);
        assert_eq!(
            op_of(
                &routes,
                Method::POST,
                "/2014-11-13/functions/f/invoke-async/",
                None
            )
            .unwrap()
            .0,
            "InvokeAsync"
        );
        assert!(routes.find(&Method::GET, "/nope", None).is_none());
        assert!(routes
            .find(&Method::PATCH, "/2015-03-31/functions", None)
            .is_none());
        assert!(routes
            .find(&Method::GET, "/2015-03-31/functions//configuration", None)
            .is_none());
    }
}
