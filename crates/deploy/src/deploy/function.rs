//! Functions: found by their stack tags, created, or updated in place — code only when its
//! digest changed, configuration only when its digest tag differs — and waited on until Active.

use super::*;

impl Deployer {
    /// The stack's functions now in Flint (by their CloudFormation tags).
    pub(super) async fn stack_functions(&self) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/2015-03-31/functions/?MaxItems=50&Marker={}", seg(m)),
                None => "/2015-03-31/functions/?MaxItems=50".to_string(),
            };
            let page = self
                .client
                .call("ListFunctions", "GET", &path, None)
                .await?;
            for f in page["Functions"].as_array().into_iter().flatten() {
                let Some(arn) = f["FunctionArn"].as_str() else {
                    continue;
                };
                let tags = self
                    .client
                    .call(
                        "ListTags",
                        "GET",
                        &format!("/2017-03-31/tags/{}", seg(arn)),
                        None,
                    )
                    .await?;
                if tags["Tags"][TAG_STACK].as_str() == Some(self.options.stack_name.as_str()) {
                    if let (Some(logical), Some(name)) = (
                        tags["Tags"][TAG_LOGICAL_ID].as_str(),
                        f["FunctionName"].as_str(),
                    ) {
                        out.insert(logical.to_string(), name.to_string());
                    }
                }
            }
            match page["NextMarker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    pub(super) async fn function(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let Value::Object(mut props) = props else {
            return Err(DeployError::Template("Properties is not a mapping".into()));
        };
        let name = match props.remove("FunctionName") {
            Some(Value::String(n)) => n,
            Some(other) => {
                return Err(DeployError::Template(format!(
                    "FunctionName {other} is not a string"
                )))
            }
            None => self
                .existing
                .get(logical)
                .cloned()
                .unwrap_or_else(|| physical_name(&self.options.stack_name, logical, 64)),
        };
        let code = props.remove("Code").unwrap_or(Value::Null);
        let user_tags = props.remove("Tags");
        let reserved = props.remove("ReservedConcurrentExecutions");
        if !props.contains_key("Role") {
            props.insert(
                "Role".into(),
                format!(
                    "arn:aws:iam::{}:role/{}",
                    self.resolver.account,
                    physical_name(&self.options.stack_name, &format!("{logical}Role"), 64)
                )
                .into(),
            );
        }
        let runtime = props.get("Runtime").and_then(Value::as_str).unwrap_or("");
        let code = self.code(&code, runtime, "Code")?;
        let digest = short_digest(&Value::Object(props.clone()));
        // Settings CreateFunction/UpdateFunctionConfiguration do not take: each has its own
        // operation, called after them.
        let recursive_loop = props.remove("RecursiveLoop");
        let runtime_management = props.remove("RuntimeManagementConfig");
        let mut settings_due = false;

        let mut tags = Map::new();
        for t in user_tags
            .iter()
            .flat_map(|t| t.as_array().into_iter().flatten())
        {
            if let (Some(k), Some(v)) = (t["Key"].as_str(), t.get("Value")) {
                tags.insert(k.to_string(), plain(v).into());
            }
        }
        tags.insert(TAG_STACK.into(), self.options.stack_name.clone().into());
        tags.insert(TAG_LOGICAL_ID.into(), logical.into());
        tags.insert(TAG_STACK_ID.into(), self.resolver.stack_id().into());
        tags.insert(TAG_CONFIGURATION.into(), digest.clone().into());
        if let CodeSource::Reference(identity, _) = &code {
            tags.insert(TAG_CODE.into(), identity.clone().into());
        }

        let path = format!("/2015-03-31/functions/{}", seg(&name));
        let current = match self.client.call("GetFunction", "GET", &path, None).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        self.begin(current.is_some(), kind, logical, &name);
        let changed;
        match &current {
            None => {
                let mut body = props.clone();
                body.insert("FunctionName".into(), name.clone().into());
                body.insert("Code".into(), code.api_body());
                body.insert("Tags".into(), Value::Object(tags.clone()));
                self.client
                    .call(
                        "CreateFunction",
                        "POST",
                        "/2015-03-31/functions",
                        Some(&Value::Object(body)),
                    )
                    .await?;
                self.wait_function(&name).await?;
                changed = true;
                settings_due = true;
            }
            Some(current) => {
                let owner = current["Tags"][TAG_STACK].as_str();
                let owner_logical = current["Tags"][TAG_LOGICAL_ID].as_str();
                if owner != Some(self.options.stack_name.as_str()) || owner_logical != Some(logical)
                {
                    return Err(DeployError::Template(format!(
                        "function {name} already exists and is not {logical} of stack {} \
                         (its tags say stack {}, logical id {})",
                        self.options.stack_name,
                        owner.unwrap_or("-"),
                        owner_logical.unwrap_or("-")
                    )));
                }
                let code_changed = match &code {
                    CodeSource::Zip(p) => {
                        current["Configuration"]["CodeSha256"].as_str() != Some(p.sha256.as_str())
                    }
                    CodeSource::Reference(identity, _) => {
                        current["Tags"][TAG_CODE].as_str() != Some(identity.as_str())
                    }
                };
                let config_changed =
                    current["Tags"][TAG_CONFIGURATION].as_str() != Some(digest.as_str());
                if code_changed {
                    let mut body = match code.api_body() {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    if let Some(a) = props.get("Architectures") {
                        body.insert("Architectures".into(), a.clone());
                    }
                    self.client
                        .call(
                            "UpdateFunctionCode",
                            "PUT",
                            &format!("{path}/code"),
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    self.wait_function(&name).await?;
                }
                if config_changed {
                    settings_due = true;
                    let mut body = props.clone();
                    body.remove("PackageType");
                    body.remove("Architectures");
                    if let Some(arn) = body.remove("CodeSigningConfigArn") {
                        self.client
                            .call(
                                "PutFunctionCodeSigningConfig",
                                "PUT",
                                &format!(
                                    "/2020-06-30/functions/{}/code-signing-config",
                                    seg(&name)
                                ),
                                Some(&json!({"CodeSigningConfigArn": arn})),
                            )
                            .await?;
                    }
                    for key in [
                        "Description",
                        "Environment",
                        "Layers",
                        "MemorySize",
                        "Timeout",
                        "EphemeralStorage",
                        "TracingConfig",
                        "DeadLetterConfig",
                    ] {
                        if !body.contains_key(key) {
                            if let Some(d) = configuration_default(key) {
                                body.insert(key.into(), d);
                            }
                        }
                    }
                    self.client
                        .call(
                            "UpdateFunctionConfiguration",
                            "PUT",
                            &format!("{path}/configuration"),
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    self.wait_function(&name).await?;
                }
                let tags_changed = self.sync_tags(current, &tags).await?;
                changed = code_changed || config_changed || tags_changed;
            }
        }
        if settings_due {
            if let Some(v) = recursive_loop {
                self.client
                    .call(
                        "PutFunctionRecursionConfig",
                        "PUT",
                        &format!("/2024-08-31/functions/{}/recursion-config", seg(&name)),
                        Some(&json!({"RecursiveLoop": v})),
                    )
                    .await?;
            }
            if let Some(v) = runtime_management {
                self.client
                    .call(
                        "PutRuntimeManagementConfig",
                        "PUT",
                        &format!(
                            "/2021-07-20/functions/{}/runtime-management-config",
                            seg(&name)
                        ),
                        Some(&v),
                    )
                    .await?;
            }
        }
        let reserved_now = current
            .as_ref()
            .and_then(|c| c["Concurrency"]["ReservedConcurrentExecutions"].as_i64());
        let reserved_wanted = reserved.as_ref().and_then(Value::as_i64);
        let mut concurrency_changed = false;
        if reserved_now != reserved_wanted {
            let path = format!("/2017-10-31/functions/{}/concurrency", seg(&name));
            match reserved_wanted {
                Some(n) => {
                    self.client
                        .call(
                            "PutFunctionConcurrency",
                            "PUT",
                            &path,
                            Some(&json!({"ReservedConcurrentExecutions": n})),
                        )
                        .await?;
                }
                None => {
                    self.client
                        .call("DeleteFunctionConcurrency", "DELETE", &path, None)
                        .await?;
                }
            }
            concurrency_changed = true;
        }
        let configuration = self
            .client
            .call(
                "GetFunctionConfiguration",
                "GET",
                &format!("{path}/configuration"),
                None,
            )
            .await?;
        self.finish(
            current.is_some(),
            changed || concurrency_changed,
            kind,
            logical,
            &name,
        );
        self.deployed_functions
            .insert(name.clone(), logical.to_string());
        let mut out = Outputs {
            reference: name.into(),
            ..Default::default()
        };
        out.attributes
            .insert("Arn".into(), configuration["FunctionArn"].clone());
        Ok(out)
    }

    /// Tags as wanted (user tags added, changed or removed); true when something changed.
    pub(super) async fn sync_tags(
        &self,
        current: &Value,
        wanted: &Map<String, Value>,
    ) -> Result<bool> {
        let Some(arn) = current["Configuration"]["FunctionArn"].as_str() else {
            return Ok(false);
        };
        let now = current["Tags"].as_object().cloned().unwrap_or_default();
        let path = format!("/2017-03-31/tags/{}", seg(arn));
        let stale: Vec<&String> = now.keys().filter(|k| !wanted.contains_key(*k)).collect();
        let mut changed = false;
        if !stale.is_empty() {
            let query: Vec<String> = stale
                .iter()
                .map(|k| format!("tagKeys={}", seg(k)))
                .collect();
            self.client
                .call(
                    "UntagResource",
                    "DELETE",
                    &format!("{path}?{}", query.join("&")),
                    None,
                )
                .await?;
            changed = true;
        }
        if wanted.iter().any(|(k, v)| now.get(k) != Some(v)) {
            self.client
                .call(
                    "TagResource",
                    "POST",
                    &path,
                    Some(&json!({"Tags": Value::Object(wanted.clone())})),
                )
                .await?;
            changed = true;
        }
        Ok(changed)
    }

    /// Until the function is Active and its last update done (or failed: the reason).
    pub(super) async fn wait_function(&self, name: &str) -> Result<()> {
        let path = format!("/2015-03-31/functions/{}/configuration", seg(name));
        for _ in 0..1200 {
            let c = self
                .client
                .call("GetFunctionConfiguration", "GET", &path, None)
                .await?;
            let state = c["State"].as_str().unwrap_or("Active");
            let update = c["LastUpdateStatus"].as_str().unwrap_or("Successful");
            if state == "Failed" || update == "Failed" {
                let reason = c["StateReason"]
                    .as_str()
                    .or(c["LastUpdateStatusReason"].as_str())
                    .unwrap_or("no reason given");
                return Err(DeployError::Template(format!(
                    "function {name} failed: {reason}"
                )));
            }
            if state == "Active" && update != "InProgress" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DeployError::Template(format!(
            "function {name} did not become Active within 2 minutes"
        )))
    }

    /// A Code/Content property as a package or a reference Flint fetches itself.
    pub(super) fn code(&self, code: &Value, runtime: &str, what: &str) -> Result<CodeSource> {
        if let Some(path) = code.get(LOCAL_PATH) {
            let Some(path) = path.as_str() else {
                return Err(DeployError::Template(format!(
                    "{what}: a local path must be a string, not {path}"
                )));
            };
            let full = self.template.dir.join(path);
            if let (Some(bucket), "Code", true) =
                (&self.options.hot_reload_bucket, what, full.is_dir())
            {
                // Mounted, not copied: edits show at the next invoke (docs/code-from-s3.md).
                let dir = std::fs::canonicalize(&full).map_err(|source| DeployError::Read {
                    path: full.clone(),
                    source,
                })?;
                let body = json!({"S3Bucket": bucket, "S3Key": dir.to_string_lossy()});
                return Ok(CodeSource::Reference(short_digest(&body), body));
            }
            return code::package_path(&full).map(CodeSource::Zip);
        }
        if let Some(source) = code.get("ZipFile") {
            let Some(source) = source.as_str() else {
                return Err(DeployError::Template(format!(
                    "{what}.ZipFile is not a string"
                )));
            };
            return code::package_inline(source, runtime).map(CodeSource::Zip);
        }
        let Value::Object(m) = code else {
            return Err(DeployError::Template(format!(
                "{what} is missing (CodeUri, InlineCode, Code.ZipFile, Code.S3Bucket/S3Key or \
                 a local path)"
            )));
        };
        if m.contains_key("S3Bucket") || m.contains_key("ImageUri") {
            return Ok(CodeSource::Reference(short_digest(code), code.clone()));
        }
        Err(DeployError::Template(format!(
            "{what}: expected ZipFile, S3Bucket/S3Key or ImageUri, got {code}"
        )))
    }
}

/// What an update sends for a configuration property the template no longer sets (Lambda's
/// UpdateFunctionConfiguration leaves a field it is not sent unchanged).
fn configuration_default(key: &str) -> Option<Value> {
    Some(match key {
        "Description" => json!(""),
        "Environment" => json!({"Variables": {}}),
        "Layers" => json!([]),
        "MemorySize" => json!(128),
        "Timeout" => json!(3),
        "EphemeralStorage" => json!({"Size": 512}),
        "TracingConfig" => json!({"Mode": "PassThrough"}),
        "DeadLetterConfig" => json!({"TargetArn": ""}),
        _ => return None,
    })
}
