//! What the template no longer has: the stack's removed functions and, on the functions
//! kept, the aliases, URLs, permissions, event invoke configs and mappings not deployed this time.

use super::*;

impl Deployer {
    pub(super) async fn delete_removed(&mut self) -> Result<()> {
        let removed: Vec<(String, String)> = self
            .existing
            .iter()
            .filter(|(_, name)| !self.deployed_functions.contains_key(*name))
            .map(|(l, n)| (l.clone(), n.clone()))
            .collect();
        let kept: Vec<String> = self.deployed_functions.keys().cloned().collect();
        // Event source mappings of the stack's functions that the template no longer has.
        let all_names: HashSet<&str> = kept
            .iter()
            .chain(removed.iter().map(|(_, n)| n))
            .map(String::as_str)
            .collect();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/2015-03-31/event-source-mappings/?Marker={}", seg(m)),
                None => "/2015-03-31/event-source-mappings/".to_string(),
            };
            let page = self
                .client
                .call("ListEventSourceMappings", "GET", &path, None)
                .await?;
            for m in page["EventSourceMappings"].as_array().into_iter().flatten() {
                let uuid = m["UUID"].as_str().unwrap_or("");
                let function = m["FunctionArn"].as_str().map(name_of_arn);
                let ours = function.is_some_and(|(f, _)| all_names.contains(&f));
                if ours && !self.kept.mappings.contains(uuid) {
                    self.client
                        .call(
                            "DeleteEventSourceMapping",
                            "DELETE",
                            &format!("/2015-03-31/event-source-mappings/{}", seg(uuid)),
                            None,
                        )
                        .await?;
                    self.removed_line("AWS::Lambda::EventSourceMapping", uuid);
                }
            }
            match page["NextMarker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for name in &kept {
            self.delete_removed_children(name).await?;
        }
        for (logical, name) in removed {
            self.progress.line(
                "DELETE_IN_PROGRESS",
                "AWS::Lambda::Function",
                &logical,
                &name,
            );
            match self
                .client
                .call(
                    "DeleteFunction",
                    "DELETE",
                    &format!("/2015-03-31/functions/{}", seg(&name)),
                    None,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.for_resource(&logical)),
            }
            self.progress
                .line("DELETE_COMPLETE", "AWS::Lambda::Function", &logical, &name);
        }
        Ok(())
    }

    pub(super) fn removed_line(&self, kind: &str, physical: &str) {
        self.progress
            .line("DELETE_COMPLETE", kind, "(removed from template)", physical);
    }

    /// A kept function's aliases, URLs, stack permissions and event invoke configs that this
    /// deploy did not keep.
    pub(super) async fn delete_removed_children(&self, function: &str) -> Result<()> {
        let f = seg(function);
        let aliases = self
            .client
            .call(
                "ListAliases",
                "GET",
                &format!("/2015-03-31/functions/{f}/aliases"),
                None,
            )
            .await?;
        let mut qualifiers: Vec<String> = vec![String::new()];
        for a in aliases["Aliases"].as_array().into_iter().flatten() {
            let Some(name) = a["Name"].as_str() else {
                continue;
            };
            if self
                .kept
                .aliases
                .contains(&(function.to_string(), name.to_string()))
            {
                qualifiers.push(name.to_string());
                continue;
            }
            self.client
                .call(
                    "DeleteAlias",
                    "DELETE",
                    &format!("/2015-03-31/functions/{f}/aliases/{}", seg(name)),
                    None,
                )
                .await?;
            self.removed_line("AWS::Lambda::Alias", &format!("{function}:{name}"));
        }
        let urls = self
            .client
            .call(
                "ListFunctionUrlConfigs",
                "GET",
                &format!("/2021-10-31/functions/{f}/urls"),
                None,
            )
            .await?;
        for u in urls["FunctionUrlConfigs"].as_array().into_iter().flatten() {
            let Some((_, q)) = u["FunctionArn"].as_str().map(name_of_arn) else {
                continue;
            };
            let q = q.unwrap_or_default();
            if self.kept.urls.contains(&(function.to_string(), q.clone())) {
                continue;
            }
            let query = if q.is_empty() {
                String::new()
            } else {
                format!("?Qualifier={}", seg(&q))
            };
            self.client
                .call(
                    "DeleteFunctionUrlConfig",
                    "DELETE",
                    &format!("/2021-10-31/functions/{f}/url{query}"),
                    None,
                )
                .await?;
            self.removed_line(
                "AWS::Lambda::Url",
                &format!(
                    "{function}{}",
                    if q.is_empty() {
                        String::new()
                    } else {
                        format!(":{q}")
                    }
                ),
            );
        }
        let prefix = format!("{}-", self.options.stack_name);
        for q in &qualifiers {
            let query = if q.is_empty() {
                String::new()
            } else {
                format!("?Qualifier={}", seg(q))
            };
            let policy = match self
                .client
                .call(
                    "GetPolicy",
                    "GET",
                    &format!("/2015-03-31/functions/{f}/policy{query}"),
                    None,
                )
                .await
            {
                Ok(p) => p,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for s in policy_statements(&policy) {
                let Some(sid) = s["Sid"].as_str() else {
                    continue;
                };
                let key = (function.to_string(), q.clone(), sid.to_string());
                if !sid.starts_with(&prefix) || self.kept.permissions.contains(&key) {
                    continue;
                }
                self.client
                    .call(
                        "RemovePermission",
                        "DELETE",
                        &format!("/2015-03-31/functions/{f}/policy/{}{query}", seg(sid)),
                        None,
                    )
                    .await?;
                self.removed_line("AWS::Lambda::Permission", sid);
            }
        }
        let configs = self
            .client
            .call(
                "ListFunctionEventInvokeConfigs",
                "GET",
                &format!("/2019-09-25/functions/{f}/event-invoke-config/list"),
                None,
            )
            .await?;
        for c in configs["FunctionEventInvokeConfigs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some((_, q)) = c["FunctionArn"].as_str().map(name_of_arn) else {
                continue;
            };
            let q = q.unwrap_or_else(|| "$LATEST".to_string());
            if self
                .kept
                .invoke_configs
                .contains(&(function.to_string(), q.clone()))
            {
                continue;
            }
            self.client
                .call(
                    "DeleteFunctionEventInvokeConfig",
                    "DELETE",
                    &format!(
                        "/2019-09-25/functions/{f}/event-invoke-config?Qualifier={}",
                        seg(&q)
                    ),
                    None,
                )
                .await?;
            self.removed_line("AWS::Lambda::EventInvokeConfig", &format!("{function}:{q}"));
        }
        Ok(())
    }
}
