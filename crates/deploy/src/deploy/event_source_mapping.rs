//! Event source mappings, found by function and source and updated only when they differ.

use super::*;

impl Deployer {
    pub(super) async fn mapping(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let Value::Object(mut props) = props else {
            return Err(DeployError::Template("Properties is not a mapping".into()));
        };
        let function = str_prop(&Value::Object(props.clone()), "FunctionName")?;
        let source = props
            .get("EventSourceArn")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut query = format!("?FunctionName={}", seg(&function));
        if let Some(s) = &source {
            query.push_str(&format!("&EventSourceArn={}", seg(s)));
        }
        let found = self
            .client
            .call(
                "ListEventSourceMappings",
                "GET",
                &format!("/2015-03-31/event-source-mappings/{query}"),
                None,
            )
            .await?;
        let current = found["EventSourceMappings"]
            .as_array()
            .and_then(|m| m.first())
            .cloned();
        let physical = source.clone().unwrap_or_else(|| function.clone());
        self.begin(current.is_some(), kind, logical, &physical);
        let (answer, changed) = match &current {
            None => {
                props.insert(
                    "Tags".into(),
                    json!({TAG_STACK: self.options.stack_name, TAG_LOGICAL_ID: logical,
                           TAG_STACK_ID: self.resolver.stack_id()}),
                );
                let a = self
                    .client
                    .call(
                        "CreateEventSourceMapping",
                        "POST",
                        "/2015-03-31/event-source-mappings/",
                        Some(&Value::Object(props)),
                    )
                    .await?;
                (a, true)
            }
            Some(c) => {
                let mut body = Map::new();
                for key in ESM_MUTABLE {
                    if let Some(v) = props.get(*key) {
                        body.insert((*key).into(), v.clone());
                    }
                }
                let enabled = props
                    .get("Enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let enabled_now = matches!(
                    c["State"].as_str(),
                    Some("Enabled" | "Enabling" | "Creating" | "Updating")
                );
                let same = enabled == enabled_now && body.iter().all(|(k, v)| c.get(k) == Some(v));
                if same {
                    (c.clone(), false)
                } else {
                    body.insert("Enabled".into(), enabled.into());
                    body.insert("FunctionName".into(), function.clone().into());
                    let uuid = c["UUID"].as_str().unwrap_or("");
                    let a = self
                        .client
                        .call(
                            "UpdateEventSourceMapping",
                            "PUT",
                            &format!("/2015-03-31/event-source-mappings/{}", seg(uuid)),
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    (a, true)
                }
            }
        };
        let uuid = answer["UUID"].as_str().unwrap_or("").to_string();
        self.finish(
            current.is_some(),
            changed,
            kind,
            logical,
            &format!("{physical} ({uuid})"),
        );
        self.kept.mappings.insert(uuid.clone());
        let mut out = Outputs {
            reference: uuid.clone().into(),
            ..Default::default()
        };
        out.attributes.insert("Id".into(), uuid.into());
        if let Some(arn) = answer.get("EventSourceMappingArn") {
            out.attributes
                .insert("EventSourceMappingArn".into(), arn.clone());
        }
        Ok(out)
    }
}

/// Fields UpdateEventSourceMapping takes.
const ESM_MUTABLE: &[&str] = &[
    "BatchSize",
    "BisectBatchOnFunctionError",
    "DestinationConfig",
    "FilterCriteria",
    "FunctionResponseTypes",
    "MaximumBatchingWindowInSeconds",
    "MaximumRecordAgeInSeconds",
    "MaximumRetryAttempts",
    "ParallelizationFactor",
    "ScalingConfig",
    "SourceAccessConfigurations",
    "TumblingWindowInSeconds",
    "DocumentDBEventSourceConfig",
    "KMSKeyArn",
    "MetricsConfig",
    "ProvisionedPollerConfig",
];
