//! Input validation against the model's constraints (required, length, value range, pattern, enum,
//! list and map members), worded exactly as AWS words it: `1 validation error detected: Value 'x'
//! at 'vpcConfig.subnetIds' failed to satisfy constraint: ...`, and where AWS answers otherwise
//! (a different exception, its own enum list) the departure is data in the tables below.

use serde_json::Value;

use crate::error::ApiError;
use crate::model::{Kind, Location, Member, Model, ShapeId};
use flint_control::ErrorCode;

/// Runtimes AWS lists (in its order) when it rejects a function's runtime or a layer's
/// compatible runtimes: one list, kept by the control plane.
const SUPPORTED_RUNTIMES: &[&str] = flint_control::runtime::AWS_RUNTIMES;

/// Every runtime id AWS lists (in its order) when a `CompatibleRuntime` query filter is unknown.
const ALL_RUNTIMES: &[&str] = &[
    "ruby3.5",
    "ruby2.6",
    "dotnetcore1.0",
    "python3.7",
    "nodejs8.10",
    "nasa",
    "ruby2.7",
    "python2.7-greengrass",
    "dotnetcore2.0",
    "python3.8",
    "java21",
    "dotnet6",
    "dotnetcore2.1",
    "python3.9",
    "java11",
    "nodejs6.10",
    "provided",
    "dotnetcore3.1",
    "dotnet8",
    "java25",
    "java17",
    "nodejs",
    "nodejs4.3",
    "java8.al2",
    "go1.x",
    "dotnet10",
    "nodejs20.x",
    "go1.9",
    "byol",
    "nodejs10.x",
    "provided.al2023",
    "nodejs22.x",
    "python3.10",
    "java8",
    "nodejs12.x",
    "python3.11",
    "nodejs24.x",
    "nodejs8.x",
    "python3.12",
    "nodejs14.x",
    "nodejs8.9",
    "nodejs26.x",
    "python3.13",
    "python3.14",
    "nodejs16.x",
    "python3.15",
    "provided.al2",
    "nodejs4.3-edge",
    "nodejs18.x",
    "ruby3.2",
    "python3.4",
    "ruby3.3",
    "ruby3.4",
    "ruby2.5",
    "python3.6",
    "python2.7",
];

/// Pairs of members AWS validates in this order whatever order the model lists them in
/// (botocore 1.44 moved `CompatibleArchitectures` before `CompatibleRuntimes`; AWS still reports
/// the runtimes first, as recorded).
const AWS_MEMBER_ORDER: &[(&str, &str)] = &[("CompatibleRuntimes", "CompatibleArchitectures")];

/// Enum sets AWS prints in its own order (recorded against AWS), by shape and where the value
/// came from. Other enums print in the model's order.
const ENUM_DISPLAY: &[(&str, Option<Location>, &[&str])] = &[
    ("Runtime", Some(Location::Query), ALL_RUNTIMES),
    ("Runtime", None, SUPPORTED_RUNTIMES),
    (
        "EventSourcePosition",
        None,
        &["LATEST", "AT_TIMESTAMP", "TRIM_HORIZON"],
    ),
    ("RecursiveLoop", None, &["Terminate", "Allow"]),
    ("InvokeMode", None, &["RESPONSE_STREAM", "BUFFERED"]),
];

/// Shapes whose lists AWS checks as a whole against the enum (no `Member must satisfy
/// constraint: [...]` wrapping), as it does for `compatibleRuntimes`.
const FLAT_LIST_ENUMS: &[&str] = &["Runtime"];

/// Where AWS answers a request differently from the generic counted `ValidationException`.
struct Departure {
    operations: &'static [&'static str],
    /// The top-level input member.
    member: &'static str,
    rule: Rule,
}

enum Rule {
    /// AWS checks the runtime itself after the model's checks pass:
    /// `InvalidParameterValueException` "Value X at 'runtime' failed to satisfy constraint:
    /// Member must satisfy enum value set: [...] or be a valid ARN" (no count, no quotes).
    RuntimeEnum,
    /// AWS limits a function's own name (the model allows 140 for ARNs) and reports it as an
    /// `InvalidParameterValueException` with the counted wording.
    FunctionNameLength(usize),
}

const DEPARTURES: &[Departure] = &[
    Departure {
        operations: &["CreateFunction", "UpdateFunctionConfiguration"],
        member: "Runtime",
        rule: Rule::RuntimeEnum,
    },
    Departure {
        operations: &["CreateFunction"],
        member: "FunctionName",
        rule: Rule::FunctionNameLength(64),
    },
];

/// A value of the wrong JSON type for its member (a request AWS could not deserialize).
#[derive(Debug)]
pub(crate) struct TypeMismatch {
    pub path: String,
    pub expected: &'static str,
    /// What was found instead, as Jackson describes it (`String "abc"`, `Object value`).
    pub found: String,
}

fn jackson_kind(v: &Value) -> String {
    match v {
        Value::String(s) => format!("String \"{s}\""),
        Value::Number(n) if n.is_f64() => format!("Floating-point value ({n})"),
        Value::Number(n) => format!("Integer value ({n})"),
        Value::Bool(b) => format!("Boolean value ({b})"),
        Value::Array(_) => "Array value (token `JsonToken.START_ARRAY`)".into(),
        Value::Object(_) => "Object value (token `JsonToken.START_OBJECT`)".into(),
        Value::Null => "Null value".into(),
    }
}

struct Checker<'m> {
    model: &'m Model,
    violations: Vec<String>,
    mismatch: Option<TypeMismatch>,
    /// Top-level members whose enum AWS checks itself (see [`Rule::RuntimeEnum`]).
    skip_enum_of: Option<&'static str>,
}

/// Validates an assembled input object against the operation's input shape.
pub(crate) fn validate(
    model: &Model,
    operation: &str,
    input_shape: ShapeId,
    input: &Value,
) -> Result<(), ApiError> {
    let departures: Vec<&Departure> = DEPARTURES
        .iter()
        .filter(|d| d.operations.contains(&operation))
        .collect();
    let mut c = Checker {
        model,
        violations: Vec::new(),
        mismatch: None,
        skip_enum_of: departures
            .iter()
            .find_map(|d| matches!(d.rule, Rule::RuntimeEnum).then_some(d.member)),
    };
    let empty = serde_json::Map::new();
    let obj = input.as_object().unwrap_or(&empty);
    // AWS reports query-string members before the others (GetFunction: qualifier, then
    // functionName); within each group the model's order.
    let members = model.members(input_shape);
    let mut ordered: Vec<&Member> = members
        .iter()
        .filter(|m| m.location == Location::Query)
        .chain(members.iter().filter(|m| m.location != Location::Query))
        .collect();
    // Where a newer model reordered members, AWS still reports them in its own order (recorded).
    for (first, then) in AWS_MEMBER_ORDER {
        let at = |name: &str| ordered.iter().position(|m| m.name == name);
        if let (Some(a), Some(b)) = (at(first), at(then)) {
            if a > b {
                ordered.swap(a, b);
            }
        }
    }
    for m in ordered {
        let v = obj.get(&m.name).unwrap_or(&Value::Null);
        if v.is_null() {
            if m.required {
                c.violations.push(format!(
                    "Value null at '{}' failed to satisfy constraint: Member must not be null",
                    m.path_name
                ));
            }
            continue;
        }
        let skip_enum = c.skip_enum_of == Some(m.name.as_str());
        c.check(m.shape, v, &m.path_name, Some(m.location), skip_enum);
    }
    if let Some(t) = c.mismatch {
        return Err(ApiError::lambda(
            ErrorCode::InvalidRequestContentException,
            format!(
                "Could not parse request body into json: Could not parse payload into json: \
                 Cannot deserialize value of type `{}` from {} at '{}'",
                t.expected, t.found, t.path
            ),
        ));
    }
    if !c.violations.is_empty() {
        return Err(ApiError::validation(counted(&c.violations)));
    }
    for d in departures {
        let Some(v) = obj.get(d.member) else { continue };
        match d.rule {
            Rule::RuntimeEnum => {
                let Some(s) = v.as_str() else { continue };
                let known = model
                    .shape_named("Runtime")
                    .and_then(|sh| sh.enum_values.as_ref())
                    .is_some_and(|e| e.iter().any(|x| x == s));
                if !known && !SUPPORTED_RUNTIMES.contains(&s) {
                    return Err(ApiError::lambda(
                        ErrorCode::InvalidParameterValueException,
                        format!(
                            "Value {s} at 'runtime' failed to satisfy constraint: Member must satisfy \
                             enum value set: [{}] or be a valid ARN",
                            SUPPORTED_RUNTIMES.join(", ")
                        ),
                    ));
                }
            }
            Rule::FunctionNameLength(max) => {
                let Some(s) = v.as_str() else { continue };
                let name = function_name_part(s);
                if name.chars().count() > max {
                    return Err(ApiError::lambda(
                        ErrorCode::InvalidParameterValueException,
                        counted(&[format!(
                            "Value '{s}' at 'functionName' failed to satisfy constraint: Member must \
                             have length less than or equal to {max}"
                        )]),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The function's own name inside a name, partial ARN or ARN (`arn:aws:lambda:r:a:function:NAME:q`).
fn function_name_part(s: &str) -> &str {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) => parts.get(i + 1).copied().unwrap_or(s),
        None => parts.first().copied().unwrap_or(s),
    }
}

/// `1 validation error detected: A` / `2 validation errors detected: A; B`.
pub(crate) fn counted(violations: &[String]) -> String {
    let n = violations.len();
    let noun = if n == 1 { "error" } else { "errors" };
    format!("{n} validation {noun} detected: {}", violations.join("; "))
}

/// A JSON value as Java's `toString` renders it in AWS's messages: `[a, b]`, `{k=v}`, `2.0`.
fn java_string(model: &Model, shape: ShapeId, v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match model.shape(shape).kind {
            Kind::Double => java_double(n.as_f64().unwrap_or(0.0)),
            _ => n.to_string(),
        },
        Value::Array(items) => {
            let member = match model.shape(shape).kind {
                Kind::List { member } => member,
                _ => shape,
            };
            let inner: Vec<String> = items
                .iter()
                .map(|i| java_string(model, member, i))
                .collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let (key_shape, value_shape) = match model.shape(shape).kind {
                Kind::Map { key, value } => (key, value),
                _ => (shape, shape),
            };
            let value_of = |name: &str, v: &Value| -> String {
                let s = match &model.shape(shape).kind {
                    Kind::Structure { members, .. } => members
                        .iter()
                        .find(|m| m.name == name)
                        .map(|m| m.shape)
                        .unwrap_or(value_shape),
                    _ => value_shape,
                };
                java_string(model, s, v)
            };
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        java_string(model, key_shape, &Value::String(k.clone())),
                        value_of(k, v)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

fn java_double(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e7 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A constraint bound as AWS prints it: `1` for integers, `1.0` for doubles.
fn bound(model: &Model, shape: ShapeId, b: f64) -> String {
    match model.shape(shape).kind {
        Kind::Double => java_double(b),
        _ => format!("{}", b as i64),
    }
}

fn enum_display(shape_name: &str, location: Option<Location>, model_values: &[String]) -> String {
    let listed = ENUM_DISPLAY
        .iter()
        .find(|(n, loc, _)| *n == shape_name && (loc.is_none() || *loc == location))
        .map(|(_, _, vals)| vals.join(", "));
    format!("[{}]", listed.unwrap_or_else(|| model_values.join(", ")))
}

fn enum_accepts(shape_name: &str, model_values: &[String], s: &str) -> bool {
    model_values.iter().any(|v| v == s)
        || ENUM_DISPLAY
            .iter()
            .any(|(n, _, vals)| *n == shape_name && vals.contains(&s))
}

impl Checker<'_> {
    fn mismatch(&mut self, path: &str, expected: &'static str, found: &Value) {
        if self.mismatch.is_none() {
            self.mismatch = Some(TypeMismatch {
                path: path.to_string(),
                expected,
                found: jackson_kind(found),
            });
        }
    }

    fn value_prefix(&self, shape: ShapeId, v: &Value, path: &str) -> String {
        if self.model.shape(shape).sensitive {
            format!("Value at '{path}' failed to satisfy constraint: ")
        } else {
            format!(
                "Value '{}' at '{path}' failed to satisfy constraint: ",
                java_string(self.model, shape, v)
            )
        }
    }

    /// The failed constraints of a scalar value (empty when it satisfies them all).
    fn scalar_failures(
        &mut self,
        shape: ShapeId,
        v: &Value,
        path: &str,
        location: Option<Location>,
        skip_enum: bool,
    ) -> Vec<String> {
        let model = self.model;
        let sh = model.shape(shape);
        let mut out = Vec::new();
        match &sh.kind {
            Kind::String => {
                let Some(s) = v.as_str() else {
                    self.mismatch(path, "java.lang.String", v);
                    return out;
                };
                let len = s.chars().count() as f64;
                if let Some(max) = sh.max.filter(|m| len > *m) {
                    out.push(format!(
                        "Member must have length less than or equal to {}",
                        bound(model, shape, max)
                    ));
                }
                if let Some(min) = sh.min.filter(|m| len < *m) {
                    out.push(format!(
                        "Member must have length greater than or equal to {}",
                        bound(model, shape, min)
                    ));
                }
                if let Some((p, re)) = &sh.pattern {
                    // A pattern the regex engine gives up on (backtrack limit) is not held
                    // against the caller.
                    if matches!(re.is_match(s), Ok(false)) {
                        out.push(format!(
                            "Member must satisfy regular expression pattern: {p}"
                        ));
                    }
                }
                if let Some(values) = &sh.enum_values {
                    if !skip_enum && !enum_accepts(&sh.name, values, s) {
                        out.push(format!(
                            "Member must satisfy enum value set: {}",
                            enum_display(&sh.name, location, values)
                        ));
                    }
                }
            }
            Kind::Integer | Kind::Long | Kind::Double => {
                let n = match (&sh.kind, v) {
                    (Kind::Double, Value::Number(n)) => n.as_f64(),
                    (Kind::Integer, Value::Number(n)) => n
                        .as_i64()
                        .filter(|i| i32::try_from(*i).is_ok())
                        .map(|i| i as f64),
                    (_, Value::Number(n)) => n.as_i64().map(|i| i as f64),
                    _ => None,
                };
                let Some(n) = n else {
                    let t = match sh.kind {
                        Kind::Double => "java.lang.Double",
                        Kind::Long => "java.lang.Long",
                        _ => "java.lang.Integer",
                    };
                    self.mismatch(path, t, v);
                    return out;
                };
                if let Some(max) = sh.max.filter(|m| n > *m) {
                    out.push(format!(
                        "Member must have value less than or equal to {}",
                        bound(model, shape, max)
                    ));
                }
                if let Some(min) = sh.min.filter(|m| n < *m) {
                    out.push(format!(
                        "Member must have value greater than or equal to {}",
                        bound(model, shape, min)
                    ));
                }
            }
            Kind::Boolean => {
                if !v.is_boolean() {
                    self.mismatch(path, "java.lang.Boolean", v);
                }
            }
            Kind::Blob => {
                if !v.is_string() {
                    self.mismatch(path, "java.nio.ByteBuffer", v);
                }
            }
            Kind::Timestamp => {
                if !(v.is_string() || v.is_number()) {
                    self.mismatch(path, "java.util.Date", v);
                }
            }
            Kind::Structure { .. } | Kind::List { .. } | Kind::Map { .. } => {}
        }
        out
    }

    /// Every constraint of a shape, as AWS lists them inside `Member must satisfy constraint: [...]`.
    fn describe(&self, shape: ShapeId, location: Option<Location>) -> Vec<String> {
        let model = self.model;
        let sh = model.shape(shape);
        let mut out = Vec::new();
        let len_or_value = match sh.kind {
            Kind::Integer | Kind::Long | Kind::Double => "value",
            _ => "length",
        };
        if let Some(max) = sh.max {
            out.push(format!(
                "Member must have {len_or_value} less than or equal to {}",
                bound(model, shape, max)
            ));
        }
        if let Some(min) = sh.min {
            out.push(format!(
                "Member must have {len_or_value} greater than or equal to {}",
                bound(model, shape, min)
            ));
        }
        if let Some((p, _)) = &sh.pattern {
            out.push(format!(
                "Member must satisfy regular expression pattern: {p}"
            ));
        }
        if let Some(values) = &sh.enum_values {
            out.push(format!(
                "Member must satisfy enum value set: {}",
                enum_display(&sh.name, location, values)
            ));
        }
        out
    }

    fn check(
        &mut self,
        shape: ShapeId,
        v: &Value,
        path: &str,
        location: Option<Location>,
        skip_enum: bool,
    ) {
        let model = self.model;
        match &model.shape(shape).kind {
            Kind::Structure { members, .. } => {
                let Some(obj) = v.as_object() else {
                    self.mismatch(path, "java.lang.Object", v);
                    return;
                };
                for m in members {
                    let child = obj.get(&m.name).unwrap_or(&Value::Null);
                    let child_path = format!("{path}.{}", m.path_name);
                    if child.is_null() {
                        if m.required {
                            self.violations.push(format!(
                                "Value null at '{child_path}' failed to satisfy constraint: Member must not be null"
                            ));
                        }
                        continue;
                    }
                    self.check(m.shape, child, &child_path, None, false);
                }
            }
            Kind::List { member } => {
                let member = *member;
                let Some(items) = v.as_array() else {
                    self.mismatch(path, "java.util.List", v);
                    return;
                };
                let sh = model.shape(shape);
                let len = items.len() as f64;
                let prefix = self.value_prefix(shape, v, path);
                if let Some(max) = sh.max.filter(|m| len > *m) {
                    self.violations.push(format!(
                        "{prefix}Member must have length less than or equal to {}",
                        bound(model, shape, max)
                    ));
                }
                if let Some(min) = sh.min.filter(|m| len < *m) {
                    self.violations.push(format!(
                        "{prefix}Member must have length greater than or equal to {}",
                        bound(model, shape, min)
                    ));
                }
                if matches!(
                    model.shape(member).kind,
                    Kind::Structure { .. } | Kind::List { .. } | Kind::Map { .. }
                ) {
                    for (i, item) in items.iter().enumerate() {
                        let item_path = format!("{path}.{}.member", i + 1);
                        if item.is_null() {
                            self.violations.push(format!(
                                "Value null at '{item_path}' failed to satisfy constraint: Member must not be null"
                            ));
                        } else {
                            self.check(member, item, &item_path, None, false);
                        }
                    }
                    return;
                }
                let mut failed = false;
                let mut flat = Vec::new();
                for item in items {
                    if item.is_null() {
                        failed = true;
                        continue;
                    }
                    let f = self.scalar_failures(member, item, path, location, skip_enum);
                    if !f.is_empty() {
                        failed = true;
                        for x in f {
                            if !flat.contains(&x) {
                                flat.push(x);
                            }
                        }
                    }
                }
                if failed {
                    if FLAT_LIST_ENUMS.contains(&model.shape(member).name.as_str()) {
                        for x in flat {
                            self.violations.push(format!("{prefix}{x}"));
                        }
                    } else {
                        let mut all = self.describe(member, location);
                        // AWS names the null check for a list of the request itself
                        // (`layers`, `architectures`), not for one inside a member structure
                        // (`vpcConfig.subnetIds`: recorded by test_invalid_vpc_config_*).
                        if !path.contains('.') {
                            all.push("Member must not be null".into());
                        }
                        self.violations.push(format!(
                            "{prefix}Member must satisfy constraint: [{}]",
                            all.join(", ")
                        ));
                    }
                }
            }
            Kind::Map { key, value } => {
                let (key, value) = (*key, *value);
                let Some(obj) = v.as_object() else {
                    self.mismatch(path, "java.util.Map", v);
                    return;
                };
                let sh = model.shape(shape);
                let prefix = self.value_prefix(shape, v, path);
                let len = obj.len() as f64;
                if let Some(max) = sh.max.filter(|m| len > *m) {
                    self.violations.push(format!(
                        "{prefix}Member must have length less than or equal to {}",
                        bound(model, shape, max)
                    ));
                }
                if let Some(min) = sh.min.filter(|m| len < *m) {
                    self.violations.push(format!(
                        "{prefix}Member must have length greater than or equal to {}",
                        bound(model, shape, min)
                    ));
                }
                let mut keys_failed = false;
                let mut values_failed = false;
                let value_is_scalar = !matches!(
                    model.shape(value).kind,
                    Kind::Structure { .. } | Kind::List { .. } | Kind::Map { .. }
                );
                for (k, item) in obj {
                    if !self
                        .scalar_failures(key, &Value::String(k.clone()), path, None, false)
                        .is_empty()
                    {
                        keys_failed = true;
                    }
                    if item.is_null() {
                        values_failed = true;
                    } else if value_is_scalar {
                        if !self
                            .scalar_failures(value, item, path, None, false)
                            .is_empty()
                        {
                            values_failed = true;
                        }
                    } else {
                        self.check(value, item, &format!("{path}.{k}"), None, false);
                    }
                }
                if keys_failed {
                    let all = self.describe(key, None);
                    self.violations.push(format!(
                        "{prefix}Map keys must satisfy constraint: [{}]",
                        all.join(", ")
                    ));
                }
                if values_failed {
                    let mut all = if value_is_scalar {
                        self.describe(value, None)
                    } else {
                        Vec::new()
                    };
                    all.push("Member must not be null".into());
                    self.violations.push(format!(
                        "{prefix}Map value must satisfy constraint: [{}]",
                        all.join(", ")
                    ));
                }
            }
            _ => {
                let failures = self.scalar_failures(shape, v, path, location, skip_enum);
                if !failures.is_empty() {
                    let prefix = self.value_prefix(shape, v, path);
                    for f in failures {
                        self.violations.push(format!("{prefix}{f}"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MODEL;
    use serde_json::json;

    fn check(op: &str, input: Value) -> Result<(), ApiError> {
        let o = MODEL.operation(op).unwrap();
        validate(&MODEL, op, o.input.unwrap(), &input)
    }

    fn err(op: &str, input: Value) -> (String, String) {
        let e = check(op, input).unwrap_err();
        (e.code.to_string(), e.message)
    }

    fn create(extra: Value) -> Value {
        let mut base = json!({
            "FunctionName": "f", "Role": "arn:aws:iam::123456789012:role/r",
            "Code": {"ZipFile": "UEs="}, "Runtime": "python3.12", "Handler": "h.h"
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    #[test]
    fn a_valid_create_function_passes() {
        check("CreateFunction", create(json!({}))).unwrap();
    }

    #[test]
    fn missing_required_member_is_not_null_violation() {
        let (code, msg) = err(
            "UntagResource",
            json!({"Resource": "arn:aws:lambda:us-east-1:123456789012:function:f"}),
        );
        assert_eq!(code, "ValidationException");
        assert_eq!(msg, "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null");
    }

    #[test]
    fn role_pattern_matches_aws_wording() {
        let (code, msg) = err("CreateFunction", create(json!({"Role": "r1"})));
        assert_eq!(code, "ValidationException");
        assert_eq!(
            msg,
            "1 validation error detected: Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
        );
    }

    #[test]
    fn list_length_and_list_member_enum() {
        let (_, msg) = err(
            "CreateFunction",
            create(json!({"Architectures": ["x86_64", "arm64"]})),
        );
        assert_eq!(msg, "1 validation error detected: Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1");
        let (_, msg) = err(
            "CreateFunction",
            create(json!({"Architectures": ["X86_64"]})),
        );
        assert_eq!(msg, "1 validation error detected: Value '[X86_64]' at 'architectures' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]");
    }

    #[test]
    fn a_list_inside_a_member_structure_names_no_null_check_as_aws_answers() {
        let (_, msg) = err(
            "CreateFunction",
            create(json!({"VpcConfig": {"SubnetIds": ["bad-format"], "SecurityGroupIds": []}})),
        );
        assert_eq!(msg, "1 validation error detected: Value '[bad-format]' at 'vpcConfig.subnetIds' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 1024, Member must have length greater than or equal to 0, Member must satisfy regular expression pattern: subnet-[0-9a-z]*]");
    }

    #[test]
    fn runtime_is_rejected_as_invalid_parameter_with_aws_list() {
        let (code, msg) = err("CreateFunction", create(json!({"Runtime": "PYTHON3.9"})));
        assert_eq!(code, "InvalidParameterValueException");
        assert_eq!(msg, "Value PYTHON3.9 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, java25, python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9, java17, nodejs16.x, dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2, java8.al2] or be a valid ARN");
        // A deprecated but modelled runtime passes here; the control plane refuses it.
        check("CreateFunction", create(json!({"Runtime": "python3.7"}))).unwrap();
    }

    #[test]
    fn long_function_name_on_create_is_invalid_parameter() {
        let name = "a".repeat(65);
        let (code, msg) = err("CreateFunction", create(json!({"FunctionName": name})));
        assert_eq!(code, "InvalidParameterValueException");
        assert_eq!(msg, format!("1 validation error detected: Value '{name}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 64"));
        // Elsewhere a 65-character name is merely not found.
        check("GetFunction", json!({"FunctionName": name})).unwrap();
    }

    #[test]
    fn map_values_and_keys_report_with_nested_paths() {
        let input = |w: Value| json!({"FunctionName": "f", "Name": "a", "FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": w}});
        let (_, msg) = err("CreateAlias", input(json!({"2": 2.0})));
        assert_eq!(msg, "1 validation error detected: Value '{2=2.0}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]");
        let (_, msg) = err("CreateAlias", input(json!({"2": -1})));
        assert_eq!(msg, "1 validation error detected: Value '{2=-1.0}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]");
        let (_, msg) = err("CreateAlias", input(json!({"$LATEST": 0.5})));
        assert_eq!(msg, "1 validation error detected: Value '{$LATEST=0.5}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 1024, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: [0-9]+]");
    }

    #[test]
    fn two_errors_are_counted_and_joined() {
        let (code, msg) = err(
            "PublishLayerVersion",
            json!({"LayerName": "l", "Content": {}, "CompatibleRuntimes": ["invalidruntime"], "CompatibleArchitectures": ["invalidarch"]}),
        );
        assert_eq!(code, "ValidationException");
        // In AWS's order (recorded), not the model's (botocore 1.44 lists CompatibleArchitectures
        // first).
        assert_eq!(msg, "2 validation errors detected: Value '[invalidruntime]' at 'compatibleRuntimes' failed to satisfy constraint: Member must satisfy enum value set: [nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, java25, python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9, java17, nodejs16.x, dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2, java8.al2]; Value '[invalidarch]' at 'compatibleArchitectures' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]");
    }

    #[test]
    fn query_members_are_reported_first() {
        let long_q = "a".repeat(129);
        let (_, msg) = err(
            "GetFunction",
            json!({"FunctionName": "my-function!", "Qualifier": long_q}),
        );
        assert!(
            msg.starts_with(&format!(
                "2 validation errors detected: Value '{long_q}' at 'qualifier'"
            )),
            "{msg}"
        );
    }

    #[test]
    fn integer_minimum_and_enum_order_as_aws() {
        let (_, msg) = err(
            "PutProvisionedConcurrencyConfig",
            json!({"FunctionName": "f", "Qualifier": "a", "ProvisionedConcurrentExecutions": 0}),
        );
        assert_eq!(msg, "1 validation error detected: Value '0' at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 1");
        let (_, msg) = err(
            "PutFunctionRecursionConfig",
            json!({"FunctionName": "f", "RecursiveLoop": "InvalidValue"}),
        );
        assert_eq!(msg, "1 validation error detected: Value 'InvalidValue' at 'recursiveLoop' failed to satisfy constraint: Member must satisfy enum value set: [Terminate, Allow]");
    }

    #[test]
    fn function_name_patterns_are_quoted_as_aws_quotes_them() {
        let (_, msg) = err(
            "CreateFunction",
            create(json!({"FunctionName": "invalid:function:name"})),
        );
        assert_eq!(msg, "1 validation error detected: Value 'invalid:function:name' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?");
        let (_, msg) = err("GetFunction", json!({"FunctionName": "my-function!"}));
        assert_eq!(msg, "1 validation error detected: Value 'my-function!' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_]+))?");
        let (_, msg) = err(
            "GetFunction",
            json!({"FunctionName": "f", "Qualifier": "invalid!"}),
        );
        assert_eq!(msg, "1 validation error detected: Value 'invalid!' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: \\$(LATEST(\\.PUBLISHED)?)|[a-zA-Z0-9-_$]+");
        let long = format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            "a".repeat(100)
        );
        let (_, msg) = err("CreateFunction", create(json!({"FunctionName": long})));
        assert_eq!(msg, format!("1 validation error detected: Value '{long}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 140"));
    }

    #[test]
    fn limits_are_the_services_not_botocores() {
        let (_, msg) = err("CreateFunction", create(json!({"MemorySize": 10241})));
        assert_eq!(msg, "1 validation error detected: Value '10241' at 'memorySize' failed to satisfy constraint: Member must have value less than or equal to 10240");
        let (_, msg) = err("CreateFunction", create(json!({"Timeout": 901})));
        assert_eq!(msg, "1 validation error detected: Value '901' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 900");
        let (_, msg) = err(
            "CreateFunction",
            create(json!({"Layers": ["arn:aws:lambda:us-east-1:111111111111:layer:l"]})),
        );
        assert_eq!(msg, "1 validation error detected: Value '[arn:aws:lambda:us-east-1:111111111111:layer:l]' at 'layers' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 2048, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+), Member must not be null]");
        let (_, msg) = err(
            "TagResource",
            json!({"Resource": "arn:aws:lambda:us-east-1:111111111111:foobar:x", "Tags": {}}),
        );
        assert!(msg.ends_with("|layer:([a-zA-Z0-9-_]+)|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)"), "{msg}");
    }

    #[test]
    fn alias_and_url_qualifier_lookarounds_work() {
        let (_, msg) = err(
            "CreateAlias",
            json!({"FunctionName": "f", "Name": "2024", "FunctionVersion": "1"}),
        );
        assert_eq!(msg, "1 validation error detected: Value '2024' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)");
        check(
            "CreateAlias",
            json!({"FunctionName": "f", "Name": "live", "FunctionVersion": "1"}),
        )
        .unwrap();
        let (_, msg) = err(
            "CreateFunctionUrlConfig",
            json!({"FunctionName": "f", "Qualifier": "$LATEST", "AuthType": "NONE"}),
        );
        assert_eq!(msg, "1 validation error detected: Value '$LATEST' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)");
    }

    #[test]
    fn nested_structure_member_path() {
        let (_, msg) = err(
            "CreateFunction",
            create(json!({"SnapStart": {"ApplyOn": "invalidOption"}})),
        );
        assert_eq!(msg, "1 validation error detected: Value 'invalidOption' at 'snapStart.applyOn' failed to satisfy constraint: Member must satisfy enum value set: [PublishedVersions, None]");
    }

    #[test]
    fn wrong_json_type_is_invalid_request_content() {
        let (code, msg) = err("CreateFunction", create(json!({"MemorySize": "big"})));
        assert_eq!(code, "InvalidRequestContentException");
        assert_eq!(msg, "Could not parse request body into json: Could not parse payload into json: Cannot deserialize value of type `java.lang.Integer` from String \"big\" at 'memorySize'");
    }

    #[test]
    fn sensitive_values_are_not_echoed() {
        let (_, msg) = err(
            "CreateFunction",
            create(json!({"Environment": {"Variables": {"bad-key": "secret"}}})),
        );
        assert!(msg.starts_with("1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"), "{msg}");
        assert!(!msg.contains("secret"));
    }
}
