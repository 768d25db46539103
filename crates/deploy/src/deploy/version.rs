//! Versions (published only when the function changed) and aliases (updated only when they
//! differ).

use super::*;

impl Deployer {
    pub(super) async fn version(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let (name, _) = function_and_qualifier(&props, "FunctionName")?;
        let base = format!("/2015-03-31/functions/{}/versions", seg(&name));
        let before: HashSet<String> = self
            .client
            .call(
                "ListVersionsByFunction",
                "GET",
                &format!("{base}?MaxItems=10000"),
                None,
            )
            .await?["Versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["Version"].as_str().map(str::to_string))
            .collect();
        let existed = before.len() > 1;
        self.begin(existed, kind, logical, &name);
        let mut body = Map::new();
        for key in ["Description", "CodeSha256"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let published = self
            .client
            .call("PublishVersion", "POST", &base, Some(&Value::Object(body)))
            .await?;
        let version = published["Version"].as_str().unwrap_or("").to_string();
        let arn = published["FunctionArn"].clone();
        self.finish(
            existed,
            !before.contains(&version),
            kind,
            logical,
            &plain(&arn),
        );
        let mut out = Outputs {
            reference: arn.clone(),
            ..Default::default()
        };
        out.attributes.insert("Version".into(), version.into());
        out.attributes.insert("FunctionArn".into(), arn);
        Ok(out)
    }

    pub(super) async fn alias(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let (function, _) = function_and_qualifier(&props, "FunctionName")?;
        let alias = str_prop(&props, "Name")?;
        let base = format!("/2015-03-31/functions/{}/aliases", seg(&function));
        let path = format!("{base}/{}", seg(&alias));
        let current = match self.client.call("GetAlias", "GET", &path, None).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let physical = format!("{function}:{alias}");
        self.begin(current.is_some(), kind, logical, &physical);
        let mut body = Map::new();
        for key in ["FunctionVersion", "Description", "RoutingConfig"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let (answer, changed) = match &current {
            None => {
                body.insert("Name".into(), alias.clone().into());
                let a = self
                    .client
                    .call("CreateAlias", "POST", &base, Some(&Value::Object(body)))
                    .await?;
                (a, true)
            }
            Some(c) => {
                body.entry("Description").or_insert(json!(""));
                body.entry("RoutingConfig")
                    .or_insert(json!({"AdditionalVersionWeights": {}}));
                let same = c["FunctionVersion"] == body["FunctionVersion"]
                    && c["Description"].as_str().unwrap_or("") == plain(&body["Description"])
                    && weights(&c["RoutingConfig"]) == weights(&body["RoutingConfig"]);
                if same {
                    (c.clone(), false)
                } else {
                    let a = self
                        .client
                        .call("UpdateAlias", "PUT", &path, Some(&Value::Object(body)))
                        .await?;
                    (a, true)
                }
            }
        };
        self.finish(current.is_some(), changed, kind, logical, &physical);
        self.kept.aliases.insert((function, alias));
        let arn = answer["AliasArn"].clone();
        let mut out = Outputs {
            reference: arn.clone(),
            ..Default::default()
        };
        out.attributes.insert("AliasArn".into(), arn);
        Ok(out)
    }
}

fn weights(routing: &Value) -> Value {
    routing
        .get("AdditionalVersionWeights")
        .cloned()
        .unwrap_or(json!({}))
}
