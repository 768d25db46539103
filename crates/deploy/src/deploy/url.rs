//! Function URL configs, created or updated per qualifier.

use super::*;

impl Deployer {
    pub(super) async fn url(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let (function, arn_qualifier) = function_and_qualifier(&props, "TargetFunctionArn")?;
        let qualifier = props
            .get("Qualifier")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(arn_qualifier);
        let query = qualifier
            .as_ref()
            .map(|q| format!("?Qualifier={}", seg(q)))
            .unwrap_or_default();
        let path = format!("/2021-10-31/functions/{}/url{query}", seg(&function));
        let current = match self
            .client
            .call("GetFunctionUrlConfig", "GET", &path, None)
            .await
        {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let physical = match &qualifier {
            Some(q) => format!("{function}:{q}"),
            None => function.clone(),
        };
        self.begin(current.is_some(), kind, logical, &physical);
        let mut body = Map::new();
        for key in ["AuthType", "Cors", "InvokeMode"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let (answer, changed) = match &current {
            None => {
                let a = self
                    .client
                    .call(
                        "CreateFunctionUrlConfig",
                        "POST",
                        &path,
                        Some(&Value::Object(body)),
                    )
                    .await?;
                (a, true)
            }
            Some(c) => {
                body.entry("Cors").or_insert(json!({}));
                body.entry("InvokeMode").or_insert(json!("BUFFERED"));
                let same = c["AuthType"] == body["AuthType"]
                    && c["InvokeMode"].as_str().unwrap_or("BUFFERED") == plain(&body["InvokeMode"])
                    && cors_equal(&c["Cors"], &body["Cors"]);
                if same {
                    (c.clone(), false)
                } else {
                    let a = self
                        .client
                        .call(
                            "UpdateFunctionUrlConfig",
                            "PUT",
                            &path,
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    (a, true)
                }
            }
        };
        let url = answer["FunctionUrl"].clone();
        self.finish(current.is_some(), changed, kind, logical, &plain(&url));
        self.kept
            .urls
            .insert((function, qualifier.unwrap_or_default()));
        let mut out = Outputs {
            reference: answer["FunctionArn"].clone(),
            ..Default::default()
        };
        out.attributes.insert("FunctionUrl".into(), url);
        out.attributes
            .insert("FunctionArn".into(), answer["FunctionArn"].clone());
        Ok(out)
    }
}

fn cors_equal(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !is_empty(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    norm(a) == norm(b)
}
