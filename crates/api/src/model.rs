//! The Lambda API model (botocore's `lambda-2015-03-31.json`, embedded gzipped) parsed once into
//! shapes and operations: the single source for routing, input assembly, validation, output
//! placement and the JSON key each error's message goes under.

use std::collections::HashMap;
use std::io::Read;
use std::sync::LazyLock;

use serde::Deserialize;

static MODEL_GZ: &[u8] = include_bytes!("../model/lambda-2015-03-31.json.gz");

/// AWS's service checks regions in ARNs with an optional `eusc-` prefix that older botocore
/// models leave out; its messages quote the patterns with it. Applied to every pattern that
/// lacks it (botocore 1.44 writes it in most patterns already).
const REGION_PATTERN: (&str, &str) = (
    r"[a-z]{2}((-gov)|(-iso([a-z]?)))?-",
    r"(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-",
);

/// `pattern` with every region left without the `eusc-` prefix given it.
fn with_eusc_regions(pattern: &str) -> String {
    let (bare, prefixed) = REGION_PATTERN;
    let already = prefixed.len() - bare.len();
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(at) = rest.find(bare) {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        if out.ends_with(&prefixed[..already]) {
            out.push_str(bare);
        } else {
            out.push_str(prefixed);
        }
        rest = &after[bare.len()..];
    }
    out.push_str(rest);
    out
}

/// A constraint AWS's service enforces (and quotes) differently from botocore's model.
struct ShapePatch {
    shape: &'static str,
    min: Option<f64>,
    max: Option<f64>,
    pattern: Option<&'static str>,
}

/// Where AWS answers with other constraints than the model states (recorded against AWS).
const SHAPE_PATCHES: &[ShapePatch] = &[
    ShapePatch {
        shape: "MemorySize",
        min: None,
        max: Some(10240.0),
        pattern: None,
    },
    ShapePatch {
        shape: "Timeout",
        min: None,
        max: Some(900.0),
        pattern: None,
    },
    ShapePatch {
        shape: "LayerVersionArn",
        min: Some(1.0),
        max: Some(2048.0),
        pattern: Some(
            r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)",
        ),
    },
    ShapePatch {
        shape: "SubnetId",
        min: Some(0.0),
        max: Some(1024.0),
        pattern: Some("subnet-[0-9a-z]*"),
    },
    ShapePatch {
        shape: "SecurityGroupId",
        min: Some(0.0),
        max: Some(1024.0),
        pattern: Some("sg-[0-9a-zA-Z]*"),
    },
    ShapePatch {
        shape: "TaggableResource",
        min: None,
        max: None,
        pattern: Some(
            r"arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-_]+)|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)",
        ),
    },
];

/// The parsed model, built on first use. The bytes are compiled into the binary and a unit test
/// parses them, so a failure here is a build defect, not bad input.
pub(crate) static MODEL: LazyLock<Model> =
    LazyLock::new(|| Model::parse(MODEL_GZ).expect("the embedded Lambda API model parses"));

pub(crate) type ShapeId = usize;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ModelError {
    #[error("decompressing the model: {0}")]
    Gzip(#[from] std::io::Error),
    #[error("parsing the model: {0}")]
    Json(#[from] serde_json::Error),
    #[error("shape {0} is referenced but not defined")]
    MissingShape(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Body,
    Uri,
    Query,
    Header,
    StatusCode,
}

#[derive(Debug)]
pub(crate) struct Member {
    /// The model's member name (`FunctionName`): the key of the JSON the control plane sees.
    pub name: String,
    /// The member as AWS names it in validation messages (`functionName`, `uRI`).
    pub path_name: String,
    pub shape: ShapeId,
    pub location: Location,
    /// URI label, query key or header name; the member name for body members.
    pub location_name: String,
    pub required: bool,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Structure {
        members: Vec<Member>,
        payload: Option<usize>,
    },
    List {
        member: ShapeId,
    },
    Map {
        key: ShapeId,
        value: ShapeId,
    },
    String,
    Integer,
    Long,
    Double,
    Boolean,
    Blob,
    Timestamp,
}

#[derive(Debug)]
pub(crate) struct Shape {
    pub name: String,
    pub kind: Kind,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The pattern as the model writes it (quoted verbatim in AWS's messages) and compiled for a
    /// full match, as Java's `String.matches` does.
    pub pattern: Option<(String, fancy_regex::Regex)>,
    pub enum_values: Option<Vec<String>>,
    pub sensitive: bool,
    /// For exception shapes: the HTTP status and the body key
    /// the message goes under (`message` or `Message`, as the model spells the member).
    pub error: Option<ErrorShape>,
}

#[derive(Debug, Clone)]
pub(crate) struct ErrorShape {
    pub status: u16,
    pub message_key: &'static str,
}

#[derive(Debug)]
pub(crate) struct Operation {
    pub name: String,
    pub method: http::Method,
    pub request_uri: String,
    pub response_code: u16,
    pub input: Option<ShapeId>,
    pub output: Option<ShapeId>,
}

#[derive(Debug)]
pub(crate) struct Model {
    pub shapes: Vec<Shape>,
    pub shape_ids: HashMap<String, ShapeId>,
    pub operations: Vec<Operation>,
}

#[derive(Deserialize)]
struct RawModel {
    operations: HashMap<String, RawOperation>,
    shapes: HashMap<String, RawShape>,
}

#[derive(Deserialize)]
struct RawOperation {
    name: String,
    http: RawHttp,
    input: Option<RawRef>,
    output: Option<RawRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHttp {
    method: String,
    request_uri: String,
    response_code: Option<u16>,
}

#[derive(Deserialize)]
struct RawRef {
    shape: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMember {
    shape: String,
    location: Option<String>,
    location_name: Option<String>,
}

#[derive(Deserialize)]
struct RawShape {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    members: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    required: Vec<String>,
    payload: Option<String>,
    member: Option<RawRef>,
    key: Option<RawRef>,
    value: Option<RawRef>,
    min: Option<f64>,
    max: Option<f64>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    enum_values: Option<Vec<String>>,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    exception: bool,
    error: Option<RawError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawError {
    http_status_code: Option<u16>,
}

/// Java bean naming, which AWS's validator uses for paths: only the first letter is lowered
/// (`FunctionName` → `functionName`, `URI` → `uRI`).
pub(crate) fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Model {
    pub(crate) fn parse(gz: &[u8]) -> Result<Self, ModelError> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut json)?;
        let raw: RawModel = serde_json::from_slice(&json)?;

        // Stable ids: sorted shape names.
        let mut names: Vec<&String> = raw.shapes.keys().collect();
        names.sort();
        let shape_ids: HashMap<String, ShapeId> = names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).clone(), i))
            .collect();
        let id = |name: &str| -> Result<ShapeId, ModelError> {
            shape_ids
                .get(name)
                .copied()
                .ok_or_else(|| ModelError::MissingShape(name.to_string()))
        };

        let mut shapes = Vec::with_capacity(names.len());
        for name in &names {
            let rs = &raw.shapes[*name];
            let kind = match rs.kind.as_str() {
                "structure" => {
                    let mut members = Vec::with_capacity(rs.members.len());
                    for (mname, mv) in &rs.members {
                        let rm: RawMember = serde_json::from_value(mv.clone())?;
                        let location = match rm.location.as_deref() {
                            Some("uri") => Location::Uri,
                            Some("querystring") => Location::Query,
                            Some("header") => Location::Header,
                            Some("statusCode") => Location::StatusCode,
                            _ => Location::Body,
                        };
                        members.push(Member {
                            name: mname.clone(),
                            path_name: lower_first(mname),
                            shape: id(&rm.shape)?,
                            location,
                            location_name: rm.location_name.unwrap_or_else(|| mname.clone()),
                            required: rs.required.iter().any(|r| r == mname),
                        });
                    }
                    let payload = rs
                        .payload
                        .as_ref()
                        .and_then(|p| members.iter().position(|m| &m.name == p));
                    Kind::Structure { members, payload }
                }
                "list" => Kind::List {
                    member: id(&rs
                        .member
                        .as_ref()
                        .map(|m| m.shape.clone())
                        .unwrap_or_default())?,
                },
                "map" => Kind::Map {
                    key: id(&rs.key.as_ref().map(|m| m.shape.clone()).unwrap_or_default())?,
                    value: id(&rs
                        .value
                        .as_ref()
                        .map(|m| m.shape.clone())
                        .unwrap_or_default())?,
                },
                "integer" => Kind::Integer,
                "long" => Kind::Long,
                "double" | "float" => Kind::Double,
                "boolean" => Kind::Boolean,
                "blob" => Kind::Blob,
                "timestamp" => Kind::Timestamp,
                _ => Kind::String,
            };
            let patch = SHAPE_PATCHES.iter().find(|p| p.shape == name.as_str());
            let pattern = match patch.and_then(|p| p.pattern) {
                Some(p) => Some(p.to_string()),
                None => rs.pattern.as_ref().map(|p| with_eusc_regions(p)),
            };
            let pattern = pattern.as_ref().and_then(|p| {
                match fancy_regex::Regex::new(&format!("^(?:{p})$")) {
                    Ok(re) => Some((p.clone(), re)),
                    Err(e) => {
                        tracing::warn!(
                            "model pattern of {name} does not compile ({e}); not enforced"
                        );
                        None
                    }
                }
            });
            let error = if rs.exception {
                let message_key = if rs.members.contains_key("Message") {
                    "Message"
                } else {
                    "message"
                };
                Some(ErrorShape {
                    status: rs
                        .error
                        .as_ref()
                        .and_then(|e| e.http_status_code)
                        .unwrap_or(400),
                    message_key,
                })
            } else {
                None
            };
            shapes.push(Shape {
                name: (*name).clone(),
                kind,
                min: patch.and_then(|p| p.min).or(rs.min),
                max: patch.and_then(|p| p.max).or(rs.max),
                pattern,
                enum_values: rs.enum_values.clone(),
                sensitive: rs.sensitive,
                error,
            });
        }

        let mut operations = Vec::with_capacity(raw.operations.len());
        let mut op_names: Vec<&String> = raw.operations.keys().collect();
        op_names.sort();
        for key in op_names {
            let ro = &raw.operations[key];
            let method =
                http::Method::from_bytes(ro.http.method.as_bytes()).unwrap_or(http::Method::POST);
            operations.push(Operation {
                name: ro.name.clone(),
                method,
                request_uri: ro.http.request_uri.clone(),
                response_code: ro.http.response_code.unwrap_or(200),
                input: ro.input.as_ref().map(|r| id(&r.shape)).transpose()?,
                output: ro.output.as_ref().map(|r| id(&r.shape)).transpose()?,
            });
        }
        Ok(Self {
            shapes,
            shape_ids,
            operations,
        })
    }

    pub(crate) fn shape(&self, id: ShapeId) -> &Shape {
        &self.shapes[id]
    }

    pub(crate) fn shape_named(&self, name: &str) -> Option<&Shape> {
        self.shape_ids.get(name).map(|&i| &self.shapes[i])
    }

    #[cfg(test)]
    pub(crate) fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.name == name)
    }

    /// The members of a structure shape (empty for anything else).
    pub(crate) fn members(&self, id: ShapeId) -> &[Member] {
        match &self.shapes[id].kind {
            Kind::Structure { members, .. } => members,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_parses_with_every_operation() {
        let m = &*MODEL;
        assert!(
            m.operations.len() >= 80,
            "{} operations",
            m.operations.len()
        );
        let invoke = m.operation("Invoke").unwrap();
        assert_eq!(invoke.method, http::Method::POST);
        assert_eq!(
            invoke.request_uri,
            "/2015-03-31/functions/{FunctionName}/invocations"
        );
        let create = m.operation("CreateFunction").unwrap();
        assert_eq!(create.response_code, 201);
    }

    #[test]
    fn regions_get_the_eusc_prefix_once() {
        let bare = r"arn:aws:lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:x";
        let with = r"arn:aws:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:x";
        assert_eq!(with_eusc_regions(bare), with);
        assert_eq!(with_eusc_regions(with), with);
    }

    #[test]
    fn every_model_pattern_compiles() {
        let m = &*MODEL;
        let raw: RawModel = {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(MODEL_GZ)
                .read_to_end(&mut json)
                .unwrap();
            serde_json::from_slice(&json).unwrap()
        };
        for (name, rs) in &raw.shapes {
            if rs.pattern.is_some() {
                assert!(
                    m.shape_named(name).unwrap().pattern.is_some(),
                    "pattern of {name}"
                );
            }
        }
    }

    #[test]
    fn error_shapes_know_their_message_key() {
        let m = &*MODEL;
        let rnf = m
            .shape_named("ResourceNotFoundException")
            .unwrap()
            .error
            .clone()
            .unwrap();
        assert_eq!(rnf.message_key, "Message");
        assert_eq!(rnf.status, 404);
        let ipv = m
            .shape_named("InvalidParameterValueException")
            .unwrap()
            .error
            .clone()
            .unwrap();
        assert_eq!(ipv.message_key, "message");
        assert_eq!(
            m.shape_named("ServiceException")
                .unwrap()
                .error
                .as_ref()
                .unwrap()
                .status,
            500
        );
    }

    #[test]
    fn member_paths_use_java_bean_names() {
        assert_eq!(lower_first("FunctionName"), "functionName");
        assert_eq!(lower_first("URI"), "uRI");
        assert_eq!(lower_first(""), "");
    }
}
