//! CloudFormation's intrinsic functions and pseudo parameters, resolved against the parameters,
//! the conditions and what the resources deployed so far answer to `Ref` and `Fn::GetAtt`.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::error::{DeployError, Result};

/// What a deployed (or skipped) resource answers to `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub reference: Value,
    pub attributes: HashMap<String, Value>,
}

/// The names a template's intrinsics resolve against.
#[derive(Debug, Default)]
pub struct Resolver {
    pub region: String,
    pub account: String,
    pub stack_name: String,
    pub parameters: HashMap<String, Value>,
    pub mappings: Map<String, Value>,
    pub conditions: HashMap<String, bool>,
    pub resources: HashMap<String, Outputs>,
    /// SAM's `!Ref Function.Alias` / `Function.Version`: the logical ids they stand for.
    pub ref_aliases: HashMap<String, String>,
}

impl Resolver {
    pub fn stack_id(&self) -> String {
        format!(
            "arn:aws:cloudformation:{}:{}:stack/{}/flint",
            self.region, self.account, self.stack_name
        )
    }

    fn pseudo(&self, name: &str) -> Option<Value> {
        Some(match name {
            "AWS::Region" => self.region.clone().into(),
            "AWS::AccountId" => self.account.clone().into(),
            "AWS::StackName" => self.stack_name.clone().into(),
            "AWS::StackId" => self.stack_id().into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NotificationARNs" => Value::Array(vec![]),
            _ => return None,
        })
    }

    /// `value` with every intrinsic resolved; `None` for `AWS::NoValue`.
    pub fn resolve(&self, value: &Value) -> Result<Option<Value>> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(v) = self.resolve(item)? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(m) if m.len() == 1 => {
                let Some((key, arg)) = m.iter().next() else {
                    return Ok(Some(value.clone()));
                };
                if key == "Ref" || key.starts_with("Fn::") || key == "Condition" {
                    self.function(key, arg)
                } else {
                    self.resolve_map(m).map(Some)
                }
            }
            Value::Object(m) => self.resolve_map(m).map(Some),
            other => Ok(Some(other.clone())),
        }
    }

    fn resolve_map(&self, m: &Map<String, Value>) -> Result<Value> {
        let mut out = Map::new();
        for (k, v) in m {
            if let Some(v) = self.resolve(v)? {
                out.insert(k.clone(), v);
            }
        }
        Ok(Value::Object(out))
    }

    /// A value that must resolve to something (not `AWS::NoValue`).
    fn need(&self, value: &Value, what: &str) -> Result<Value> {
        self.resolve(value)?.ok_or_else(|| {
            DeployError::Template(format!("{what}: AWS::NoValue is not allowed here"))
        })
    }

    fn need_str(&self, value: &Value, what: &str) -> Result<String> {
        match self.need(value, what)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(DeployError::Template(format!(
                "{what}: expected a string, got {other}"
            ))),
        }
    }

    fn function(&self, name: &str, arg: &Value) -> Result<Option<Value>> {
        match name {
            "Ref" => {
                let target = self.need_str(arg, "Ref")?;
                self.reference(&target)
            }
            "Fn::GetAtt" => {
                let (resource, attribute) = match self.need(arg, name)? {
                    Value::Array(parts) if parts.len() == 2 => {
                        (str_of(&parts[0], name)?, str_of(&parts[1], name)?)
                    }
                    Value::String(s) => match s.split_once('.') {
                        Some((r, a)) => (r.to_string(), a.to_string()),
                        None => return Err(bad(name, "expected [Resource, Attribute]")),
                    },
                    _ => return Err(bad(name, "expected [Resource, Attribute]")),
                };
                self.attribute(&resource, &attribute).map(Some)
            }
            "Fn::Sub" => self.sub(arg).map(|s| Some(Value::String(s))),
            "Fn::Join" => {
                let Value::Array(parts) = arg else {
                    return Err(bad(name, "expected [delimiter, [values]]"));
                };
                let [delimiter, list] = parts.as_slice() else {
                    return Err(bad(name, "expected [delimiter, [values]]"));
                };
                let delimiter = self.need_str(delimiter, name)?;
                let Value::Array(items) = self.need(list, name)? else {
                    return Err(bad(name, "the second argument is not a list"));
                };
                let strings: Vec<String> = items
                    .iter()
                    .map(|v| str_of(v, name))
                    .collect::<Result<_>>()?;
                Ok(Some(Value::String(strings.join(&delimiter))))
            }
            "Fn::Select" => {
                let Value::Array(parts) = arg else {
                    return Err(bad(name, "expected [index, [values]]"));
                };
                let [index, list] = parts.as_slice() else {
                    return Err(bad(name, "expected [index, [values]]"));
                };
                let index: usize = self
                    .need_str(index, name)?
                    .parse()
                    .map_err(|_| bad(name, "the index is not a number"))?;
                let Value::Array(items) = self.need(list, name)? else {
                    return Err(bad(name, "the second argument is not a list"));
                };
                items
                    .get(index)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| bad(name, "the index is out of range"))
            }
            "Fn::Split" => {
                let Value::Array(parts) = arg else {
                    return Err(bad(name, "expected [delimiter, string]"));
                };
                let [delimiter, source] = parts.as_slice() else {
                    return Err(bad(name, "expected [delimiter, string]"));
                };
                let delimiter = self.need_str(delimiter, name)?;
                let source = self.need_str(source, name)?;
                Ok(Some(Value::Array(
                    source.split(&delimiter).map(|s| s.into()).collect(),
                )))
            }
            "Fn::If" => {
                let Value::Array(parts) = arg else {
                    return Err(bad(name, "expected [condition, then, else]"));
                };
                let [condition, then, otherwise] = parts.as_slice() else {
                    return Err(bad(name, "expected [condition, then, else]"));
                };
                let condition = str_of(condition, name)?;
                if self.condition(&condition)? {
                    self.resolve(then)
                } else {
                    self.resolve(otherwise)
                }
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut m = Map::new();
                m.insert(name.to_string(), arg.clone());
                self.evaluate(&Value::Object(m)).map(|b| Some(b.into()))
            }
            "Fn::FindInMap" => {
                let Value::Array(parts) = arg else {
                    return Err(bad(name, "expected [map, top key, second key]"));
                };
                let keys: Vec<String> = parts
                    .iter()
                    .map(|p| self.need_str(p, name))
                    .collect::<Result<_>>()?;
                let [map, top, second] = keys.as_slice() else {
                    return Err(bad(name, "expected [map, top key, second key]"));
                };
                self.mappings
                    .get(map)
                    .and_then(|m| m.get(top))
                    .and_then(|m| m.get(second))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| bad(name, &format!("no {map}/{top}/{second} in Mappings")))
            }
            "Fn::Base64" => {
                use base64::Engine as _;
                let s = self.need_str(arg, name)?;
                Ok(Some(
                    base64::engine::general_purpose::STANDARD.encode(s).into(),
                ))
            }
            "Fn::GetAZs" => Ok(Some(Value::Array(
                ["a", "b", "c"]
                    .iter()
                    .map(|z| format!("{}{z}", self.region).into())
                    .collect(),
            ))),
            "Fn::ToJsonString" => {
                let v = self.need(arg, name)?;
                Ok(Some(Value::String(v.to_string())))
            }
            "Fn::Length" => match self.need(arg, name)? {
                Value::Array(items) => Ok(Some(items.len().into())),
                _ => Err(bad(name, "expected a list")),
            },
            "Fn::ImportValue" => Err(DeployError::Template(
                "Fn::ImportValue is not supported: Flint has no stack exports; pass the value \
                 as a parameter (--parameter-overrides) instead"
                    .to_string(),
            )),
            other => Err(DeployError::Template(format!(
                "{other} is not supported by flint deploy"
            ))),
        }
    }

    fn reference(&self, target: &str) -> Result<Option<Value>> {
        if target == "AWS::NoValue" {
            return Ok(None);
        }
        if let Some(v) = self.pseudo(target) {
            return Ok(Some(v));
        }
        if let Some(v) = self.parameters.get(target) {
            return Ok(Some(v.clone()));
        }
        let logical = self.ref_aliases.get(target).map_or(target, String::as_str);
        match self.resources.get(logical) {
            Some(out) => Ok(Some(out.reference.clone())),
            None => Err(DeployError::Template(format!(
                "Ref {target}: no parameter or deployed resource has that name"
            ))),
        }
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<Value> {
        let logical = self
            .ref_aliases
            .get(resource)
            .map_or(resource, String::as_str);
        let out = self.resources.get(logical).ok_or_else(|| {
            DeployError::Template(format!(
                "Fn::GetAtt {resource}.{attribute}: no deployed resource has that name"
            ))
        })?;
        out.attributes.get(attribute).cloned().ok_or_else(|| {
            DeployError::Template(format!(
                "Fn::GetAtt {resource}.{attribute}: {resource} has no attribute {attribute} \
                 (it has: {})",
                out.attributes
                    .keys()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// `Fn::Sub`, string or `[string, {variables}]`.
    fn sub(&self, arg: &Value) -> Result<String> {
        let (text, variables) = match arg {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Array(parts) if parts.len() == 2 => {
                let text = str_of(&parts[0], "Fn::Sub")?;
                let Some(Value::Object(vars)) = self.resolve(&parts[1])? else {
                    return Err(bad("Fn::Sub", "the variables are not a mapping"));
                };
                (text, vars)
            }
            _ => return Err(bad("Fn::Sub", "expected a string or [string, {variables}]")),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(bad("Fn::Sub", &format!("unclosed ${{ in {text:?}")));
            };
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let value = match variables.get(name) {
                    Some(v) => v.clone(),
                    None => match name.split_once('.') {
                        Some((r, a)) if self.pseudo(name).is_none() => self.attribute(r, a)?,
                        _ => self
                            .reference(name)?
                            .unwrap_or(Value::String(String::new())),
                    },
                };
                out.push_str(&str_of(&value, "Fn::Sub")?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A named condition's value.
    pub fn condition(&self, name: &str) -> Result<bool> {
        self.conditions.get(name).copied().ok_or_else(|| {
            DeployError::Template(format!("condition {name} is not defined in Conditions"))
        })
    }

    /// A condition expression (Fn::Equals, Fn::And … or `{"Condition": name}`).
    pub fn evaluate(&self, expr: &Value) -> Result<bool> {
        let Value::Object(m) = expr else {
            return match expr {
                Value::Bool(b) => Ok(*b),
                Value::String(s) if s == "true" => Ok(true),
                Value::String(s) if s == "false" => Ok(false),
                _ => Err(DeployError::Template(format!("{expr} is not a condition"))),
            };
        };
        let Some((key, arg)) = m.iter().next() else {
            return Err(DeployError::Template("an empty condition".to_string()));
        };
        let list = |arg: &Value| -> Result<Vec<Value>> {
            match arg {
                Value::Array(items) => Ok(items.clone()),
                _ => Err(bad(key, "expected a list")),
            }
        };
        match key.as_str() {
            "Condition" => self.condition(&str_of(arg, "Condition")?),
            "Fn::Equals" => {
                let items = list(arg)?;
                let [a, b] = items.as_slice() else {
                    return Err(bad(key, "expected two values"));
                };
                let a = self.resolve(a)?.unwrap_or(Value::Null);
                let b = self.resolve(b)?.unwrap_or(Value::Null);
                Ok(loose(&a) == loose(&b))
            }
            "Fn::Not" => {
                let items = list(arg)?;
                let [a] = items.as_slice() else {
                    return Err(bad(key, "expected one condition"));
                };
                Ok(!self.evaluate(a)?)
            }
            "Fn::And" => {
                for c in list(arg)? {
                    if !self.evaluate(&c)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for c in list(arg)? {
                    if self.evaluate(&c)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => match self.resolve(expr)? {
                Some(Value::Bool(b)) => Ok(b),
                _ => Err(bad(key, "is not a condition function")),
            },
        }
    }

    /// Evaluates the Conditions section in dependency order (a condition may name another).
    pub fn evaluate_conditions(&mut self, conditions: &Map<String, Value>) -> Result<()> {
        let mut pending: Vec<(&String, &Value)> = conditions.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut still = Vec::new();
            for (name, expr) in pending {
                match self.evaluate(expr) {
                    Ok(v) => {
                        self.conditions.insert(name.clone(), v);
                    }
                    Err(e) if e.to_string().contains("is not defined in Conditions") => {
                        still.push((name, expr))
                    }
                    Err(e) => return Err(DeployError::Template(format!("condition {name}: {e}"))),
                }
            }
            if still.len() == before {
                let names: Vec<_> = still.iter().map(|(n, _)| n.as_str()).collect();
                return Err(DeployError::Template(format!(
                    "conditions {} name undefined or circular conditions",
                    names.join(", ")
                )));
            }
            pending = still;
        }
        Ok(())
    }
}

/// Values compared as CloudFormation compares them (parameters are strings: `"1"` equals `1`).
fn loose(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other.clone(),
    }
}

fn str_of(v: &Value, what: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(DeployError::Template(format!(
            "{what}: expected a string, got {other}"
        ))),
    }
}

fn bad(function: &str, message: &str) -> DeployError {
    DeployError::Template(format!("{function}: {message}"))
}

/// The logical ids a value refers to (Ref, Fn::GetAtt, `${X}` / `${X.Attr}` in Fn::Sub).
pub fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("Ref", Value::String(target)) => {
                        out.insert(target.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(Value::String(r)) = parts.first() {
                            out.insert(r.clone());
                        }
                        references(v, out);
                    }
                    ("Fn::GetAtt", Value::String(s)) => {
                        out.insert(s.split('.').next().unwrap_or(s).to_string());
                    }
                    ("Fn::Sub", _) => {
                        let (text, vars) = match v {
                            Value::String(s) => (Some(s.as_str()), None),
                            Value::Array(parts) => {
                                (parts.first().and_then(Value::as_str), parts.get(1))
                            }
                            _ => (None, None),
                        };
                        if let Some(vars) = vars {
                            references(vars, out);
                        }
                        let declared: Vec<&String> = vars
                            .and_then(Value::as_object)
                            .map(|m| m.keys().collect())
                            .unwrap_or_default();
                        if let Some(text) = text {
                            let mut rest = text;
                            while let Some(start) = rest.find("${") {
                                let after = &rest[start + 2..];
                                let Some(end) = after.find('}') else { break };
                                let name = &after[..end];
                                if !name.starts_with('!')
                                    && !name.starts_with("AWS::")
                                    && !declared.iter().any(|d| d.as_str() == name)
                                {
                                    out.insert(name.split('.').next().unwrap_or(name).to_string());
                                }
                                rest = &after[end + 1..];
                            }
                        }
                    }
                    _ => references(v, out),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolver() -> Resolver {
        let mut r = Resolver {
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            stack_name: "app".into(),
            ..Default::default()
        };
        r.parameters.insert("Stage".into(), "prod".into());
        r.parameters.insert("Size".into(), "256".into());
        r.resources.insert(
            "Fn".into(),
            Outputs {
                reference: "app-Fn-ABC".into(),
                attributes: [(
                    "Arn".to_string(),
                    json!("arn:aws:lambda:eu-west-1:123456789012:function:app-Fn-ABC"),
                )]
                .into_iter()
                .collect(),
            },
        );
        r
    }

    #[test]
    fn ref_resolves_parameters_pseudo_parameters_and_resources() {
        let r = resolver();
        let v = r
            .resolve(&json!({"a": {"Ref": "Stage"}, "b": {"Ref": "AWS::Region"},
                             "c": {"Ref": "Fn"}, "d": {"Ref": "AWS::NoValue"},
                             "e": [1, {"Ref": "AWS::NoValue"}, 2]}))
            .unwrap()
            .unwrap();
        assert_eq!(
            v,
            json!({"a": "prod", "b": "eu-west-1", "c": "app-Fn-ABC", "e": [1, 2]})
        );
    }

    #[test]
    fn sub_substitutes_references_attributes_variables_and_keeps_literals() {
        let r = resolver();
        let v = r
            .resolve(&json!({"Fn::Sub": "${AWS::StackName}-${Stage}-${Fn.Arn}-${!Literal}"}))
            .unwrap()
            .unwrap();
        assert_eq!(
            v,
            json!("app-prod-arn:aws:lambda:eu-west-1:123456789012:function:app-Fn-ABC-${Literal}")
        );
        let v = r
            .resolve(&json!({"Fn::Sub": ["${X}/${AWS::AccountId}", {"X": {"Ref": "Stage"}}]}))
            .unwrap()
            .unwrap();
        assert_eq!(v, json!("prod/123456789012"));
    }

    #[test]
    fn join_select_split_and_find_in_map() {
        let mut r = resolver();
        r.mappings = json!({"M": {"prod": {"Mem": 512}}})
            .as_object()
            .unwrap()
            .clone();
        let v = r
            .resolve(&json!([
                {"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]},
                {"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]},
                {"Fn::FindInMap": ["M", {"Ref": "Stage"}, "Mem"]},
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(v, json!(["a-prod", "y", 512]));
    }

    #[test]
    fn conditions_and_if() {
        let mut r = resolver();
        let conditions = json!({
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
            "Both": {"Fn::And": [{"Condition": "IsProd"}, {"Fn::Equals": [{"Ref": "Size"}, 256]}]},
        });
        r.evaluate_conditions(conditions.as_object().unwrap())
            .unwrap();
        assert!(r.condition("IsProd").unwrap());
        assert!(!r.condition("NotProd").unwrap());
        assert!(r.condition("Both").unwrap());
        let v = r
            .resolve(&json!({"Fn::If": ["NotProd", 1, {"Ref": "AWS::NoValue"}]}))
            .unwrap();
        assert_eq!(v, None);
    }

    #[test]
    fn import_value_is_refused_clearly() {
        let e = resolver()
            .resolve(&json!({"Fn::ImportValue": "x"}))
            .unwrap_err();
        assert!(e.to_string().contains("Fn::ImportValue is not supported"));
    }

    #[test]
    fn getatt_of_a_missing_attribute_names_the_ones_there() {
        let e = resolver()
            .resolve(&json!({"Fn::GetAtt": ["Fn", "Nope"]}))
            .unwrap_err();
        assert!(e.to_string().contains("it has: Arn"), "{e}");
    }

    #[test]
    fn references_finds_refs_getatts_and_sub_variables() {
        let mut out = BTreeSet::new();
        references(
            &json!({"a": {"Ref": "A"}, "b": {"Fn::GetAtt": ["B", "Arn"]},
                    "c": {"Fn::Sub": "${C.Arn}-${AWS::Region}-${!D}"},
                    "d": {"Fn::Sub": ["${E}-${V}", {"V": {"Ref": "F"}}]}}),
            &mut out,
        );
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            ["A", "B", "C", "E", "F"]
        );
    }
}
