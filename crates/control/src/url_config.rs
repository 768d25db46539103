//! Function URLs: Create, Get, Update, Delete and ListFunctionUrlConfigs on a function or an
//! alias, with AWS's shapes and messages. A URL is `http://{url-id}.lambda-url.{region}.localhost:{port}/`
//! (browsers and curl resolve `*.localhost` to loopback), also served under the path form
//! `{public base URL}/_flint/url/{url-id}/` for clients that do not; the `urls` crate serves both.

use serde::{Deserialize, Serialize};

use crate::function::QualifiedInput;
use crate::function_name::{self, FunctionRef};
use crate::state::Function;
use crate::sub_resource::{self, ListInput};
use crate::{ControlPlane, LambdaError, Scope};

/// The path prefix of function URLs on this server.
pub const URL_PATH_PREFIX: &str = "/_flint/url/";

/// The model's pattern for `FunctionUrlQualifier`, as AWS quotes it.
const QUALIFIER_PATTERN: &str = "((?!^\\d+$)^[0-9a-zA-Z-_]+$)";

/// One function URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UrlConfig {
    /// 32 lowercase letters and digits, as AWS's URL ids.
    pub url_id: String,
    pub auth_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_mode: Option<String>,
    pub creation_time: String,
    pub last_modified_time: String,
}

#[cfg(test)]
impl UrlConfig {
    pub(crate) fn test_value(id: &str) -> Self {
        Self {
            url_id: id.into(),
            auth_type: "NONE".into(),
            cors: None,
            invoke_mode: None,
            creation_time: String::new(),
            last_modified_time: String::new(),
        }
    }
}

/// The `Cors` shape, in and out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Cors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateInput {
    pub function_name: String,
    pub qualifier: Option<String>,
    pub auth_type: Option<String>,
    pub cors: Option<Cors>,
    pub invoke_mode: Option<String>,
}

/// The answers of Create/Get/Update and the list items; AWS leaves out `InvokeMode` and
/// `LastModifiedTime` in some of them (see each operation).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UrlConfigOutput {
    pub function_url: String,
    pub function_arn: String,
    pub auth_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    pub creation_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoke_mode: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOutput {
    pub function_url_configs: Vec<UrlConfigOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

/// Where a function URL leads (for the api crate's URL endpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct UrlTarget {
    pub scope: Scope,
    pub function_name: String,
    /// The alias the URL belongs to; None for the function's own URL (`$LATEST`).
    pub qualifier: Option<String>,
    /// `NONE` or `AWS_IAM`.
    pub auth_type: String,
    pub cors: Option<Cors>,
    /// `BUFFERED` or `RESPONSE_STREAM`.
    pub invoke_mode: String,
}

impl ControlPlane {
    /// The function a URL id (the path segment after `/_flint/url/`) reaches, if it exists.
    pub fn function_url_target(&self, url_id: &str) -> Option<UrlTarget> {
        let hint = self.sub_resources.urls.read().get(url_id).cloned();
        let (scope, name, key) = hint?;
        let live = self.index.get(&scope, &name).and_then(|f| {
            let u = f.doc.settings.url_configs.get(&key)?;
            (u.url_id == url_id && (key.is_empty() || sub_resource::qualifier_exists(&f, &key)))
                .then(|| UrlTarget {
                    scope: scope.clone(),
                    function_name: name.clone(),
                    qualifier: (!key.is_empty()).then(|| key.clone()),
                    auth_type: u.auth_type.clone(),
                    cors: u.cors.clone(),
                    invoke_mode: u.invoke_mode.clone().unwrap_or_else(|| "BUFFERED".into()),
                })
        });
        if live.is_none() {
            // The URL, its alias or its function was deleted: forget the hint.
            self.sub_resources.urls.write().remove(url_id);
        }
        live
    }

    /// The address of a URL id on this server: AWS's host form under this server's port.
    pub fn function_url(&self, region: &str, url_id: &str) -> String {
        let base = self.options.read().public_base_url.clone();
        host_form_url(&base, region, url_id)
    }
}

/// `http://{id}.lambda-url.{region}.localhost:{port}/` for a server addressed by IP address or
/// `localhost`; `http://{id}.lambda-url.{region}.{host}/` for one with a DNS name (which then
/// needs a wildcard record, as AWS's `*.lambda-url.{region}.on.aws`).
pub fn host_form_url(base: &str, region: &str, url_id: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip_or_localhost = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok();
    let domain = if ip_or_localhost { "localhost" } else { host };
    match port {
        Some(p) => format!("{scheme}://{url_id}.lambda-url.{region}.{domain}:{p}/"),
        None => format!("{scheme}://{url_id}.lambda-url.{region}.{domain}/"),
    }
}

fn new_url_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..32)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect()
}

/// Lambda's URL-config timestamps: `2021-12-01T22:16:06.232848Z`.
fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn function_missing() -> LambdaError {
    LambdaError::not_found("Function does not exist")
}

fn check_qualifier(q: &str) -> Result<(), LambdaError> {
    if sub_resource::is_alias_name(q) {
        return Ok(());
    }
    Err(LambdaError::validation(format!(
        "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: {QUALIFIER_PATTERN}"
    )))
}

/// Resolves FunctionName + Qualifier: URLs belong to the function itself or to an alias.
fn url_ref(
    scope: &Scope,
    function_name: &str,
    qualifier: Option<&str>,
) -> Result<(FunctionRef, String), LambdaError> {
    if let Some(q) = qualifier {
        check_qualifier(q)?;
    }
    let fref = function_name::resolve(scope, function_name, qualifier)?;
    let key = match fref.qualifier.as_deref() {
        None => String::new(),
        Some(q) => {
            check_qualifier(q)?;
            q.to_string()
        }
    };
    Ok((fref, key))
}

fn key_exists(f: &Function, key: &str) -> bool {
    key.is_empty() || f.doc.aliases.contains_key(key)
}

fn render(cp: &ControlPlane, fref: &FunctionRef, scope: &Scope, u: &UrlConfig) -> UrlConfigOutput {
    UrlConfigOutput {
        function_url: cp.function_url(&scope.region, &u.url_id),
        function_arn: fref.arn(scope),
        auth_type: u.auth_type.clone(),
        cors: u.cors.clone(),
        creation_time: u.creation_time.clone(),
        last_modified_time: Some(u.last_modified_time.clone()),
        invoke_mode: Some(u.invoke_mode.clone().unwrap_or_else(|| "BUFFERED".into())),
    }
}

pub async fn create(
    cp: &ControlPlane,
    scope: &Scope,
    input: CreateInput,
) -> Result<UrlConfigOutput, LambdaError> {
    let (fref, key) = url_ref(scope, &input.function_name, input.qualifier.as_deref())?;
    let auth_type = input.auth_type.clone().unwrap_or_else(|| "NONE".into());
    let (_, config) = cp
        .index
        .modify(scope, &fref.name, function_missing, |current, draft| {
            if !key_exists(current, &key) {
                return Err(function_missing());
            }
            if current.doc.settings.url_configs.contains_key(&key) {
                return Err(LambdaError::conflict(format!(
                    "Failed to create function url config for [functionArn = {}]. Error \
                     message:  FunctionUrlConfig exists for this Lambda function",
                    fref.arn(scope)
                )));
            }
            let t = now();
            let config = UrlConfig {
                url_id: new_url_id(),
                auth_type: auth_type.clone(),
                cors: input.cors.clone(),
                invoke_mode: input.invoke_mode.clone(),
                creation_time: t.clone(),
                last_modified_time: t,
            };
            draft
                .doc
                .settings
                .url_configs
                .insert(key.clone(), config.clone());
            Ok(config)
        })
        .await?;
    cp.sub_resources.urls.write().insert(
        config.url_id.clone(),
        (scope.clone(), fref.name.clone(), key.clone()),
    );
    // CreateFunctionUrlConfig answers without LastModifiedTime, and with InvokeMode only if set.
    Ok(UrlConfigOutput {
        last_modified_time: None,
        invoke_mode: input.invoke_mode,
        ..render(cp, &fref, scope, &config)
    })
}

pub async fn get(
    cp: &ControlPlane,
    scope: &Scope,
    input: QualifiedInput,
) -> Result<UrlConfigOutput, LambdaError> {
    let (fref, key) = url_ref(scope, &input.function_name, input.qualifier.as_deref())?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(LambdaError::resource_not_found)?;
    if !key_exists(&f, &key) {
        return Err(LambdaError::resource_not_found());
    }
    let u = f
        .doc
        .settings
        .url_configs
        .get(&key)
        .ok_or_else(LambdaError::resource_not_found)?;
    Ok(render(cp, &fref, scope, u))
}

pub async fn update(
    cp: &ControlPlane,
    scope: &Scope,
    input: CreateInput,
) -> Result<UrlConfigOutput, LambdaError> {
    let (fref, key) = url_ref(scope, &input.function_name, input.qualifier.as_deref())?;
    let (_, config) = cp
        .index
        .modify(scope, &fref.name, function_missing, |current, draft| {
            if !key_exists(current, &key) {
                return Err(function_missing());
            }
            let Some(existing) = current.doc.settings.url_configs.get(&key) else {
                return Err(LambdaError::resource_not_found());
            };
            let mut config = existing.clone();
            if let Some(a) = &input.auth_type {
                config.auth_type.clone_from(a);
            }
            if let Some(c) = &input.cors {
                config.cors = Some(c.clone());
            }
            if let Some(m) = &input.invoke_mode {
                config.invoke_mode = Some(m.clone());
            }
            config.last_modified_time = now();
            draft
                .doc
                .settings
                .url_configs
                .insert(key.clone(), config.clone());
            Ok(config)
        })
        .await?;
    // UpdateFunctionUrlConfig (like Create) shows InvokeMode only once a request has set it:
    // then it keeps showing the mode set, even when this update leaves it alone.
    Ok(UrlConfigOutput {
        invoke_mode: config.invoke_mode.clone(),
        ..render(cp, &fref, scope, &config)
    })
}

pub async fn delete(
    cp: &ControlPlane,
    scope: &Scope,
    input: QualifiedInput,
) -> Result<Empty, LambdaError> {
    let (fref, key) = url_ref(scope, &input.function_name, input.qualifier.as_deref())?;
    let (_, removed) = cp
        .index
        .modify(
            scope,
            &fref.name,
            LambdaError::resource_not_found,
            |current, draft| {
                if !key_exists(current, &key) {
                    return Err(LambdaError::resource_not_found());
                }
                draft
                    .doc
                    .settings
                    .url_configs
                    .remove(&key)
                    .ok_or_else(LambdaError::resource_not_found)
            },
        )
        .await?;
    cp.sub_resources.urls.write().remove(&removed.url_id);
    Ok(Empty {})
}

pub async fn list(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListInput,
) -> Result<ListOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, None)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(function_missing)?;
    let items: Vec<(String, UrlConfigOutput)> = f
        .doc
        .settings
        .url_configs
        .iter()
        .filter(|(k, _)| key_exists(&f, k))
        .map(|(k, u)| {
            let r = FunctionRef {
                name: fref.name.clone(),
                qualifier: (!k.is_empty()).then(|| k.clone()),
            };
            // The function's own URL sorts first.
            (
                format!("{}{k}", u8::from(!k.is_empty())),
                render(cp, &r, scope, u),
            )
        })
        .collect();
    let (configs, next_marker) =
        sub_resource::page(items, input.marker.as_deref(), input.max_items)?;
    Ok(ListOutput {
        function_url_configs: configs,
        next_marker,
    })
}

#[cfg(test)]
mod tests;
