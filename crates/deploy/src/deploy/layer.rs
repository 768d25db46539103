//! Layer versions: published when the content or settings differ from the layer's newest
//! version; their permissions added once per version.

use super::*;

impl Deployer {
    pub(super) async fn layer(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let Value::Object(mut props) = props else {
            return Err(DeployError::Template("Properties is not a mapping".into()));
        };
        let name = match props.remove("LayerName") {
            Some(Value::String(n)) => n,
            _ => physical_name(&self.options.stack_name, logical, 140),
        };
        let content = props.remove("Content").unwrap_or(Value::Null);
        let content = self.code(&content, "", "Content")?;
        let base = format!("/2018-10-31/layers/{}/versions", seg(&name));
        let latest = match self
            .client
            .call("ListLayerVersions", "GET", &base, None)
            .await
        {
            Ok(list) => list["LayerVersions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["Version"].as_i64())
                .max(),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let mut current = None;
        if let Some(v) = latest {
            current = Some(
                self.client
                    .call("GetLayerVersion", "GET", &format!("{base}/{v}"), None)
                    .await?,
            );
        }
        let unchanged = current.as_ref().is_some_and(|c| {
            let same_code = match &content {
                CodeSource::Zip(p) => c["Content"]["CodeSha256"].as_str() == Some(&p.sha256),
                CodeSource::Reference(..) => false,
            };
            same_code
                && props.iter().all(|(k, v)| c.get(k) == Some(v))
                && [
                    "Description",
                    "CompatibleRuntimes",
                    "CompatibleArchitectures",
                    "LicenseInfo",
                ]
                .iter()
                .all(|k| props.contains_key(*k) || c.get(*k).is_none_or(is_empty))
        });
        self.begin(current.is_some(), kind, logical, &name);
        let published = match (&current, unchanged) {
            (Some(c), true) => c.clone(),
            _ => {
                let mut body = props.clone();
                body.insert("Content".into(), content.api_body());
                self.client
                    .call(
                        "PublishLayerVersion",
                        "POST",
                        &base,
                        Some(&Value::Object(body)),
                    )
                    .await?
            }
        };
        let arn = published["LayerVersionArn"].clone();
        self.finish(current.is_some(), !unchanged, kind, logical, &plain(&arn));
        let mut out = Outputs {
            reference: arn.clone(),
            ..Default::default()
        };
        out.attributes.insert("LayerVersionArn".into(), arn);
        Ok(out)
    }

    /// AddLayerVersionPermission on the version the template names (layer versions are
    /// immutable and never deleted, so neither are their statements).
    pub(super) async fn layer_permission(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let arn = str_prop(&props, "LayerVersionArn")?;
        // arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION
        let parts: Vec<&str> = arn.split(':').collect();
        let (Some(name), Some(version)) = (parts.get(6), parts.get(7)) else {
            return Err(DeployError::Template(format!(
                "LayerVersionArn {arn} is not a layer version ARN"
            )));
        };
        let mut body = Map::new();
        for key in ["Action", "Principal", "OrganizationId"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let prefix = physical_name(&self.options.stack_name, logical, 90);
        let sid = format!(
            "{prefix}-{}",
            &short_digest(&Value::Object(body.clone()))[..8]
        );
        let path = format!(
            "/2018-10-31/layers/{}/versions/{}/policy",
            seg(name),
            seg(version)
        );
        let present = match self
            .client
            .call("GetLayerVersionPolicy", "GET", &path, None)
            .await
        {
            Ok(p) => policy_statements(&p)
                .iter()
                .any(|s| s["Sid"].as_str() == Some(sid.as_str())),
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        self.begin(present, kind, logical, &sid);
        if !present {
            body.insert("StatementId".into(), sid.clone().into());
            self.client
                .call(
                    "AddLayerVersionPermission",
                    "POST",
                    &path,
                    Some(&Value::Object(body)),
                )
                .await?;
        }
        self.finish(present, !present, kind, logical, &sid);
        Ok(Outputs {
            reference: sid.into(),
            ..Default::default()
        })
    }
}
