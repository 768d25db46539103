//! Reading a template: YAML (with CloudFormation's short-form tags, `!Ref x` becoming
//! `{"Ref": "x"}`) or JSON, into one JSON value with the template's sections picked out.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{DeployError, Result};

/// A template as written (intrinsics unresolved), after the SAM transform when it had one.
#[derive(Debug, Clone)]
pub struct Template {
    /// The directory relative paths (CodeUri, CDK assets) are taken from.
    pub dir: PathBuf,
    pub parameters: Map<String, Value>,
    pub mappings: Map<String, Value>,
    pub conditions: Map<String, Value>,
    pub resources: Map<String, Value>,
    pub outputs: Map<String, Value>,
    pub globals: Map<String, Value>,
    pub is_sam: bool,
}

impl Template {
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path).map_err(|source| DeployError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let value = parse(&text).map_err(|message| DeployError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Template::from_value(value, dir)
    }

    pub fn from_value(value: Value, dir: PathBuf) -> Result<Template> {
        let Value::Object(mut top) = value else {
            return Err(DeployError::Template(
                "the template is not a mapping".to_string(),
            ));
        };
        let mut section = |name: &str| -> Result<Map<String, Value>> {
            match top.remove(name) {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(m)) => Ok(m),
                Some(_) => Err(DeployError::Template(format!(
                    "the {name} section is not a mapping"
                ))),
            }
        };
        let parameters = section("Parameters")?;
        let mappings = section("Mappings")?;
        let conditions = section("Conditions")?;
        let resources = section("Resources")?;
        let outputs = section("Outputs")?;
        let globals = section("Globals")?;
        let is_sam = match top.get("Transform") {
            Some(Value::String(t)) => t.starts_with("AWS::Serverless"),
            Some(Value::Array(ts)) => ts
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.starts_with("AWS::Serverless"))),
            _ => false,
        } || resources.values().any(|r| {
            r.get("Type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("AWS::Serverless::"))
        });
        if resources.is_empty() {
            return Err(DeployError::Template(
                "the template has no Resources".to_string(),
            ));
        }
        Ok(Template {
            dir,
            parameters,
            mappings,
            conditions,
            resources,
            outputs,
            globals,
            is_sam,
        })
    }
}

/// A template's text (JSON is YAML too, but serde_json keeps key order and big numbers exact).
pub fn parse(text: &str) -> std::result::Result<Value, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| e.to_string());
    }
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    yaml_to_json(yaml)
}

/// YAML to JSON, short-form intrinsics to their long form.
fn yaml_to_json(v: serde_yaml::Value) -> std::result::Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<std::result::Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            short_form(name, inner)?
        }
    })
}

/// `!Name value` as CloudFormation reads it.
fn short_form(name: &str, inner: Value) -> std::result::Result<Value, String> {
    let key = match name {
        "Ref" => "Ref".to_string(),
        "Condition" => "Condition".to_string(),
        "GetAtt" => {
            // `!GetAtt Resource.Attribute` (the attribute may itself contain dots).
            let value = match inner {
                Value::String(s) => match s.split_once('.') {
                    Some((r, a)) => Value::Array(vec![r.into(), a.into()]),
                    None => return Err(format!("!GetAtt {s}: expected Resource.Attribute")),
                },
                other => other,
            };
            return Ok(single("Fn::GetAtt", value));
        }
        "Base64" | "Cidr" | "FindInMap" | "GetAZs" | "ImportValue" | "Join" | "Select"
        | "Split" | "Sub" | "Transform" | "And" | "Equals" | "If" | "Not" | "Or" | "Length"
        | "ToJsonString" => format!("Fn::{name}"),
        other => return Err(format!("unknown tag !{other}")),
    };
    Ok(single(&key, inner))
}

fn single(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), value);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_form_tags_become_long_form_intrinsics() {
        let v = parse(
            "A: !Ref Param\nB: !GetAtt Fn.Arn\nC: !Sub '${AWS::Region}-x'\n\
             D: !Join [',', [a, !Ref P]]\nE: !If [Cond, 1, !Ref AWS::NoValue]\n\
             F: !GetAtt [Fn, Arn]\nG: !Select [0, !GetAZs '']\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "A": {"Ref": "Param"},
                "B": {"Fn::GetAtt": ["Fn", "Arn"]},
                "C": {"Fn::Sub": "${AWS::Region}-x"},
                "D": {"Fn::Join": [",", ["a", {"Ref": "P"}]]},
                "E": {"Fn::If": ["Cond", 1, {"Ref": "AWS::NoValue"}]},
                "F": {"Fn::GetAtt": ["Fn", "Arn"]},
                "G": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
            })
        );
    }

    #[test]
    fn json_templates_keep_their_key_order() {
        let v = parse(r#"{"Resources": {"B": {}, "A": {}}}"#).unwrap();
        let keys: Vec<_> = v["Resources"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["B", "A"]);
    }

    #[test]
    fn an_unknown_tag_is_an_error() {
        assert!(parse("A: !Bogus x\n").unwrap_err().contains("!Bogus"));
    }

    #[test]
    fn a_template_transformed_by_sam_is_recognised() {
        let t = Template::from_value(
            json!({"Transform": "AWS::Serverless-2016-10-31",
                   "Resources": {"F": {"Type": "AWS::Lambda::Function"}}}),
            PathBuf::from("."),
        )
        .unwrap();
        assert!(t.is_sam);
    }
}
