//! Event invoke configs (retries, maximum age, destinations) per qualifier.

use super::*;

impl Deployer {
    pub(super) async fn invoke_config(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let (function, _) = function_and_qualifier(&props, "FunctionName")?;
        let qualifier = str_prop(&props, "Qualifier")?;
        let path = format!(
            "/2019-09-25/functions/{}/event-invoke-config?Qualifier={}",
            seg(&function),
            seg(&qualifier)
        );
        let current = match self
            .client
            .call("GetFunctionEventInvokeConfig", "GET", &path, None)
            .await
        {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let physical = format!("{function}:{qualifier}");
        self.begin(current.is_some(), kind, logical, &physical);
        let mut body = Map::new();
        for key in [
            "MaximumRetryAttempts",
            "MaximumEventAgeInSeconds",
            "DestinationConfig",
        ] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let same = current
            .as_ref()
            .is_some_and(|c| body.iter().all(|(k, v)| c.get(k) == Some(v)));
        if !same {
            self.client
                .call(
                    "PutFunctionEventInvokeConfig",
                    "PUT",
                    &path,
                    Some(&Value::Object(body)),
                )
                .await?;
        }
        self.finish(current.is_some(), !same, kind, logical, &physical);
        self.kept.invoke_configs.insert((function, qualifier));
        Ok(Outputs {
            reference: physical.into(),
            ..Default::default()
        })
    }
}
