//! Resource-policy statements, their ids carrying a digest of their properties.

use super::*;

impl Deployer {
    /// A permission's statement id carries a digest of its properties (`<stack>-<Logical>-
    /// <SUFFIX>-<digest>`): an unchanged one is found as it is, a changed one is added under its
    /// new id and the old statement removed (CloudFormation replaces permissions too).
    pub(super) async fn permission(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let (function, qualifier) = function_and_qualifier(&props, "FunctionName")?;
        let mut body = Map::new();
        for key in [
            "Action",
            "Principal",
            "SourceArn",
            "SourceAccount",
            "EventSourceToken",
            "FunctionUrlAuthType",
            "PrincipalOrgID",
            "InvokedViaFunctionUrl",
        ] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let prefix = physical_name(&self.options.stack_name, logical, 90);
        let digest = short_digest(&Value::Object(body.clone()));
        let sid = format!("{prefix}-{}", &digest[..8]);
        let query = qualifier
            .as_ref()
            .map(|q| format!("?Qualifier={}", seg(q)))
            .unwrap_or_default();
        let base = format!("/2015-03-31/functions/{}/policy", seg(&function));
        let sids: Vec<String> = match self
            .client
            .call("GetPolicy", "GET", &format!("{base}{query}"), None)
            .await
        {
            Ok(p) => policy_statements(&p)
                .iter()
                .filter_map(|s| s["Sid"].as_str().map(str::to_string))
                .filter(|s| s.starts_with(&format!("{prefix}-")))
                .collect(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let existed = !sids.is_empty();
        let unchanged = sids.contains(&sid);
        self.begin(existed, kind, logical, &sid);
        if !unchanged {
            body.insert("StatementId".into(), sid.clone().into());
            self.client
                .call(
                    "AddPermission",
                    "POST",
                    &format!("{base}{query}"),
                    Some(&Value::Object(body)),
                )
                .await?;
        }
        for stale in sids.iter().filter(|s| **s != sid) {
            self.client
                .call(
                    "RemovePermission",
                    "DELETE",
                    &format!("{base}/{}{query}", seg(stale)),
                    None,
                )
                .await?;
        }
        self.finish(existed, !unchanged, kind, logical, &sid);
        self.kept
            .permissions
            .insert((function, qualifier.unwrap_or_default(), sid.clone()));
        Ok(Outputs {
            reference: sid.into(),
            ..Default::default()
        })
    }
}
