//! Functions: CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions,
//! UpdateFunctionCode, UpdateFunctionConfiguration and DeleteFunction, with AWS's validation
//! order, RevisionId guards, state transitions and error messages.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::code::StoredCode;
use crate::code_source::CodeSource;
use crate::configuration::{
    now_timestamp, ConfigInput, FunctionConfiguration, VersionConfig, VersionRecord, View, LATEST,
};
use crate::function_name::{self, FunctionRef};
use crate::lifecycle::Status;
use crate::state::{Function, FunctionDoc};
use crate::{alias, arn, version, ControlPlane, LambdaError, Scope};

/// ListFunctions' default and largest page.
pub const MAX_LIST_ITEMS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionInput {
    pub function_name: String,
    pub role: Option<String>,
    #[serde(default)]
    pub code: CodeInput,
    pub publish: Option<bool>,
    pub package_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub code_signing_config_arn: Option<String>,
    pub architectures: Option<Vec<String>>,
    #[serde(flatten)]
    pub config: ConfigInput,
}

/// `Code` of CreateFunction (`FunctionCode` in the model).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeInput {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
    pub image_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QualifiedInput {
    pub function_name: String,
    pub qualifier: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionOutput {
    pub configuration: FunctionConfiguration,
    pub code: CodeLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeLocation {
    pub repository_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_image_uri: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Concurrency {
    pub reserved_concurrent_executions: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsInput {
    pub master_region: Option<String>,
    pub function_version: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub functions: Vec<FunctionConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFunctionCodeInput {
    pub function_name: String,
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFunctionConfigurationInput {
    pub function_name: String,
    pub revision_id: Option<String>,
    #[serde(flatten)]
    pub config: ConfigInput,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteFunctionOutput {
    /// Bound to the HTTP status by the model: AWS answers 204.
    pub status_code: u16,
}

/// The version a qualifier designates: `$LATEST` when absent, a published version by number, or
/// the version an alias points to (its primary version; see [`resolve_invoke_version`]).
pub fn resolve_version<'a>(f: &'a Function, qualifier: Option<&str>) -> Option<&'a VersionRecord> {
    let q = qualifier.unwrap_or(LATEST);
    f.version(q).or_else(|| {
        let alias = f.doc.aliases.get(q)?;
        f.version(&alias.function_version)
    })
}

/// The version an invoke with this qualifier runs: as [`resolve_version`], except that an alias
/// with a routing configuration sends each invoke to its extra version with that version's weight.
/// No allocation, no disk: map lookups and one random number.
pub fn resolve_invoke_version<'a>(
    f: &'a Function,
    qualifier: Option<&str>,
) -> Option<&'a VersionRecord> {
    let q = qualifier.unwrap_or(LATEST);
    f.version(q).or_else(|| {
        let alias = f.doc.aliases.get(q)?;
        f.version(alias.pick_version())
    })
}

impl ControlPlane {
    /// Whether function `name` exists in `scope` and, when `qualifier` is given, whether it has
    /// that version (`$LATEST`, a published number) or alias: what other resources (event source
    /// mappings, ...) ask about functions.
    pub(crate) fn function_exists(
        &self,
        scope: &Scope,
        name: &str,
        qualifier: Option<&str>,
    ) -> bool {
        self.index
            .get(scope, name)
            .is_some_and(|f| resolve_version(&f, qualifier).is_some())
    }
}

/// Loads, checks and stores the code of a request (a zip, an S3 object or a hot-reload
/// directory); the zip work runs off the async workers.
/// The pin keeps the code from the garbage collector: hold it until the function is recorded.
async fn ingest_code(
    cp: &ControlPlane,
    scope: &Scope,
    src: CodeSource,
) -> Result<crate::code::Ingested, LambdaError> {
    let package = cp
        .fetch_package(scope, src, cp.code.download_path(), || {
            LambdaError::invalid("Please provide a source for function code.")
        })
        .await?;
    let store = cp.code.clone();
    tokio::task::spawn_blocking(move || package.store(&store))
        .await
        .map_err(|e| LambdaError::service(format!("code ingestion failed: {e}")))?
}

/// CreateFunction's `Code` against its `PackageType`: the image URI of an Image function.
fn check_package_members(is_image: bool, code: &CodeInput) -> Result<Option<String>, LambdaError> {
    let has_zip = code.zip_file.is_some() || code.s3_bucket.is_some() || code.s3_key.is_some();
    if is_image {
        if has_zip {
            return Err(LambdaError::invalid(
                "Please don't provide ZipFile, S3Bucket, S3Key or S3ObjectVersion when the \
                 intended function PackageType is Image.",
            ));
        }
        return match &code.image_uri {
            Some(uri) => Ok(Some(uri.clone())),
            None => Err(LambdaError::invalid(
                "Please provide ImageUri when the intended function PackageType is Image.",
            )),
        };
    }
    if code.image_uri.is_some() {
        return Err(LambdaError::invalid(
            "Please don't provide ImageUri when the intended function PackageType is Zip.",
        ));
    }
    Ok(None)
}

/// Resolves an image URI to its digest now (a missing image is refused at once, as AWS does);
/// the layers are pulled while the version is `Pending` (see `ControlPlane::schedule_settle`).
async fn resolve_image(
    cp: &ControlPlane,
    uri: &str,
    architectures: &[String],
) -> Result<StoredCode, LambdaError> {
    let arch = architectures.first().map_or("x86_64", String::as_str);
    let resolved = cp
        .code
        .images()
        .resolve(uri, arch)
        .await
        .map_err(|e| crate::error::image_error(&e))?;
    tracing::info!(image = uri, digest = %resolved.manifest_digest, "image resolved");
    Ok(StoredCode::image(uri, &resolved))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn create(
    cp: &ControlPlane,
    scope: &Scope,
    input: CreateFunctionInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let name = function_name::resolve_for_create(scope, &input.function_name)?;
    if let Some(tags) = &input.tags {
        crate::tags::check_limit(tags)?;
    }
    let package_type = input.package_type.clone().unwrap_or_else(|| "Zip".into());
    let is_image = package_type == "Image";
    let image_uri = check_package_members(is_image, &input.code)?;
    if let Some(arn) = &input.code_signing_config_arn {
        // AWS reports a missing configuration here with CodeSigningConfigNotFoundException,
        // not GetCodeSigningConfig's ResourceNotFoundException.
        cp.code_signing.check_for_function(scope, arn)?;
    }
    let role = input.role.clone().unwrap_or_default();
    // Validate the configuration before the (costly) code handling, as far as it can be.
    let placeholder = StoredCode {
        sha256_hex: String::new(),
        size: 0,
        unzipped_size: 0,
        hot_reload_dir: None,
        image: None,
    };
    let mut config = VersionConfig::defaults(&name, role, placeholder);
    config.package_type = package_type;
    if let Some(a) = input.architectures.clone() {
        config.architectures = a;
    }
    config.apply(input.config, cp.runtimes.as_ref(), &|arns| {
        cp.resolve_layers(scope, arns)
    })?;
    if cp.index.contains(scope, &name) {
        return Err(LambdaError::function_already_exists(&name));
    }
    if let Some(vpc) = &config.vpc {
        config.vpc_id = cp.vpc_of(&scope.region, vpc).await?;
    }
    let src = CodeSource {
        zip_file: input.code.zip_file,
        s3_bucket: input.code.s3_bucket,
        s3_key: input.code.s3_key,
        s3_object_version: input.code.s3_object_version,
    };
    let mut pin = None;
    config.code = match &image_uri {
        Some(uri) => resolve_image(cp, uri, &config.architectures).await?,
        None => {
            let ingested = ingest_code(cp, scope, src).await?;
            pin = ingested.pin;
            ingested.code
        }
    };
    let latest = VersionRecord {
        version: LATEST.into(),
        snapshot_id: new_id(),
        revision_id: new_id(),
        last_modified: now_timestamp(),
        config,
        status: Status::creating(),
        latest_description: None,
    };
    let mut doc = FunctionDoc {
        name: name.clone(),
        latest,
        last_published: 0,
        tags: input.tags.unwrap_or_default(),
        reserved_concurrency: None,
        aliases: BTreeMap::new(),
        // In the function's own document, so that it is bound in the same transaction.
        settings: crate::sub_resource::FunctionSettings {
            code_signing_config_arn: input.code_signing_config_arn.clone(),
            ..Default::default()
        },
    };
    let mut versions = BTreeMap::new();
    let mut published = None;
    if input.publish == Some(true) {
        let mut v = doc.latest.clone();
        v.version = "1".into();
        v.snapshot_id = new_id();
        v.revision_id = new_id();
        doc.last_published = 1;
        versions.insert(1, v.clone());
        published = Some(v);
    }
    let f = cp.index.insert(scope, doc, versions)?;
    // Recorded: the function's own reference keeps the code from now on.
    drop(pin);
    let (create_settle, _) = settle_delays(cp);
    let latest = &f.doc.latest;
    cp.schedule_settle(scope, &name, LATEST, &latest.snapshot_id, create_settle);
    let shown = match published {
        Some(v) => {
            cp.schedule_settle(scope, &name, &v.version, &v.snapshot_id, create_settle);
            v
        }
        None => latest.clone(),
    };
    // AWS shows the unqualified ARN in CreateFunction's answer, even when it published.
    Ok(shown.render(scope, &name, arn::function_arn(scope, &name), View::Full))
}

fn settle_delays(cp: &ControlPlane) -> (std::time::Duration, std::time::Duration) {
    let o = cp.options.read();
    (o.create_settle, o.update_settle)
}

/// Finds the addressed version for Get*: 404 with the ARN the caller used.
fn find<'a>(
    scope: &Scope,
    fref: &FunctionRef,
    f: Option<&'a Function>,
) -> Result<&'a VersionRecord, LambdaError> {
    f.and_then(|f| resolve_version(f, fref.qualifier.as_deref()))
        .ok_or_else(|| LambdaError::function_not_found(&fref.arn(scope)))
}

pub async fn get_configuration(
    cp: &ControlPlane,
    scope: &Scope,
    input: QualifiedInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let f = cp.index.get(scope, &fref.name);
    let v = find(scope, &fref, f.as_deref())?;
    Ok(v.render(scope, &fref.name, fref.arn(scope), View::Full))
}

pub async fn get(
    cp: &ControlPlane,
    scope: &Scope,
    input: QualifiedInput,
) -> Result<GetFunctionOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let f = cp.index.get(scope, &fref.name);
    let v = find(scope, &fref, f.as_deref())?;
    let f = f
        .as_deref()
        .ok_or_else(|| LambdaError::function_not_found(&fref.arn(scope)))?;
    Ok(GetFunctionOutput {
        configuration: v.render(scope, &fref.name, fref.arn(scope), View::Full),
        code: match &v.config.code.image {
            Some(image) => CodeLocation {
                repository_type: "ECR".into(),
                location: None,
                image_uri: Some(image.image_uri.clone()),
                resolved_image_uri: Some(image.resolved_image_uri.clone()),
            },
            None => CodeLocation {
                repository_type: "S3".into(),
                location: Some(match &v.config.code.hot_reload_dir {
                    // What LocalStack answers for a hot-reloaded function.
                    Some(dir) => format!("file://{}", dir.display()),
                    None => cp.download_url(
                        crate::signed_url::Download::FunctionCode,
                        &v.config.code.sha256_hex,
                    ),
                }),
                image_uri: None,
                resolved_image_uri: None,
            },
        },
        tags: (!f.doc.tags.is_empty()).then(|| f.doc.tags.clone()),
        concurrency: f.doc.reserved_concurrency.map(|n| Concurrency {
            reserved_concurrent_executions: n,
        }),
    })
}

/// Position in ListFunctions' order: name, then `$LATEST` (0) before versions 1, 2, ...
type ListKey = (String, u64);

fn encode_marker(key: &ListKey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", key.0, key.1))
}

fn decode_marker(marker: &str) -> Result<ListKey, LambdaError> {
    let bad = || LambdaError::invalid_marker(marker);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (name, n) = raw.rsplit_once(':').ok_or_else(bad)?;
    Ok((name.to_string(), n.parse().map_err(|_| bad())?))
}

pub async fn list(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListFunctionsInput,
) -> Result<ListFunctionsOutput, LambdaError> {
    // Lambda@Edge replicas (MasterRegion) never exist in Flint.
    if input.master_region.is_some() {
        return Ok(ListFunctionsOutput {
            next_marker: None,
            functions: Vec::new(),
        });
    }
    let all_versions = input.function_version.as_deref() == Some("ALL");
    let after = input.marker.as_deref().map(decode_marker).transpose()?;
    let page = (input.max_items.unwrap_or(MAX_LIST_ITEMS as u32) as usize).clamp(1, MAX_LIST_ITEMS);
    let mut functions = cp.index.list(scope);
    functions.sort_by(|a, b| a.name().cmp(b.name()));
    let mut entries: Vec<FunctionConfiguration> = Vec::new();
    let mut last: Option<ListKey> = None;
    let mut more = false;
    'outer: for f in &functions {
        let versions: Vec<(u64, &VersionRecord)> = if all_versions {
            std::iter::once((0, &f.doc.latest))
                .chain(f.versions.iter().map(|(n, v)| (*n, v)))
                .collect()
        } else {
            vec![(0, &f.doc.latest)]
        };
        for (ord, v) in versions {
            let key = (f.name().to_string(), ord);
            if after.as_ref().is_some_and(|a| &key <= a) {
                continue;
            }
            if entries.len() == page {
                more = true;
                break 'outer;
            }
            let function_arn = if all_versions {
                arn::qualified_function_arn(scope, f.name(), &v.version)
            } else {
                arn::function_arn(scope, f.name())
            };
            entries.push(v.render(scope, f.name(), function_arn, View::Listing));
            last = Some(key);
        }
    }
    Ok(ListFunctionsOutput {
        next_marker: if more {
            last.as_ref().map(encode_marker)
        } else {
            None
        },
        functions: entries,
    })
}

/// Resolves the FunctionName of an update: the function itself (or its `$LATEST`).
fn resolve_latest_target(scope: &Scope, function_name: &str) -> Result<FunctionRef, LambdaError> {
    let fref = function_name::resolve(scope, function_name, None)?;
    match fref.qualifier.as_deref() {
        None | Some(LATEST) => Ok(fref),
        Some(_) => Err(LambdaError::unqualified_only()),
    }
}

fn check_revision(given: Option<&str>, current: &VersionRecord) -> Result<(), LambdaError> {
    match given {
        Some(r) if r != current.revision_id => Err(LambdaError::stale_function_revision()),
        _ => Ok(()),
    }
}

/// Applies an update to `$LATEST` (new snapshot, revision, InProgress) and publishes if asked.
/// Returns the record to show: `$LATEST`, or the published version.
fn update_latest(
    draft: &mut crate::state::Draft,
    config: VersionConfig,
    publish: bool,
) -> VersionRecord {
    let latest = &mut draft.doc.latest;
    latest.config = config;
    latest.snapshot_id = new_id();
    latest.revision_id = new_id();
    latest.last_modified = now_timestamp();
    latest.status = latest.status.updating();
    if publish {
        let n = version::publish(draft, None);
        if let Some(v) = draft.versions().get(&n) {
            return v.clone();
        }
    }
    draft.doc.latest.clone()
}

/// After an update: schedule the transitions, render the answer.
fn finish_update(
    cp: &ControlPlane,
    scope: &Scope,
    name: &str,
    f: &Function,
    shown: VersionRecord,
) -> FunctionConfiguration {
    let (create_settle, update_settle) = settle_delays(cp);
    let latest = &f.doc.latest;
    cp.schedule_settle(scope, name, LATEST, &latest.snapshot_id, update_settle);
    if shown.version != LATEST {
        cp.schedule_settle(
            scope,
            name,
            &shown.version,
            &shown.snapshot_id,
            create_settle,
        );
    }
    // A published version is shown under its own (qualified) ARN, as AWS answers
    // UpdateFunctionCode with `Publish`.
    let function_arn = if shown.version == LATEST {
        arn::function_arn(scope, name)
    } else {
        arn::qualified_function_arn(scope, name, &shown.version)
    };
    shown.render(scope, name, function_arn, View::Full)
}

pub async fn update_code(
    cp: &ControlPlane,
    scope: &Scope,
    input: UpdateFunctionCodeInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let fref = resolve_latest_target(scope, &input.function_name)?;
    let name = fref.name.clone();
    let not_found = || LambdaError::function_not_found(&arn::function_arn(scope, &name));
    let current = cp.index.get(scope, &name).ok_or_else(not_found)?;
    let is_image = current.doc.latest.config.package_type == "Image";
    let has_zip = input.zip_file.is_some() || input.s3_bucket.is_some() || input.s3_key.is_some();
    if is_image && (input.image_uri.is_none() || has_zip) {
        return Err(LambdaError::invalid(
            "Please provide ImageUri when updating a function with packageType Image.",
        ));
    }
    if !is_image && input.image_uri.is_some() {
        return Err(LambdaError::invalid(
            "Please don't provide ImageUri when updating a function with packageType Zip.",
        ));
    }
    // Cheap checks first, so a doomed request does not unpack a zip.
    check_revision(input.revision_id.as_deref(), &current.doc.latest)?;
    current
        .doc
        .latest
        .status
        .check_updatable(&arn::function_arn(scope, &name))?;
    let src = CodeSource {
        zip_file: input.zip_file,
        s3_bucket: input.s3_bucket,
        s3_key: input.s3_key,
        s3_object_version: input.s3_object_version,
    };
    let mut pin = None;
    let code = match &input.image_uri {
        Some(uri) => {
            let archs = input
                .architectures
                .clone()
                .unwrap_or_else(|| current.doc.latest.config.architectures.clone());
            resolve_image(cp, uri, &archs).await?
        }
        None => {
            let ingested = ingest_code(cp, scope, src).await?;
            pin = ingested.pin;
            ingested.code
        }
    };
    let architectures = input.architectures;
    if input.dry_run == Some(true) {
        let mut shown = current.doc.latest.clone();
        shown.config.code = code;
        if let Some(a) = architectures {
            shown.config.architectures = a;
        }
        return Ok(shown.render(scope, &name, arn::function_arn(scope, &name), View::Full));
    }
    let revision = input.revision_id;
    let publish = input.publish == Some(true);
    let (f, shown) = cp
        .index
        .modify(scope, &name, not_found, |current, draft| {
            // Checked again under the writer lock: another writer may have won meanwhile.
            check_revision(revision.as_deref(), &current.doc.latest)?;
            current
                .doc
                .latest
                .status
                .check_updatable(&arn::function_arn(scope, &name))?;
            let mut config = current.doc.latest.config.clone();
            config.code = code;
            if let Some(a) = architectures {
                config.architectures = a;
            }
            Ok(update_latest(draft, config, publish))
        })
        .await?;
    drop(pin);
    // The code $LATEST ran before may be used by nothing now.
    cp.collect_code();
    Ok(finish_update(cp, scope, &name, &f, shown))
}

pub async fn update_configuration(
    cp: &ControlPlane,
    scope: &Scope,
    input: UpdateFunctionConfigurationInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let fref = resolve_latest_target(scope, &input.function_name)?;
    let name = fref.name.clone();
    let not_found = || LambdaError::function_not_found(&arn::function_arn(scope, &name));
    let revision = input.revision_id;
    let config_input = input.config;
    // EC2 is asked before the update (AWS refuses a VpcConfig it rejects, changing nothing),
    // but only about a function that exists: a missing one is a 404 first, as on AWS.
    let vpc_id = match &config_input.vpc_config {
        Some(vpc) => {
            cp.index.get(scope, &name).ok_or_else(not_found)?;
            Some(cp.vpc_of(&scope.region, vpc).await?)
        }
        None => None,
    };
    let runtimes = cp.runtimes.clone();
    let resolve_layers = |arns: &[String]| cp.resolve_layers(scope, arns);
    let (f, shown) = cp
        .index
        .modify(scope, &name, not_found, |current, draft| {
            let mut config = current.doc.latest.config.clone();
            config.apply(config_input, runtimes.as_ref(), &resolve_layers)?;
            if let Some(vpc_id) = vpc_id {
                config.vpc_id = vpc_id;
            }
            check_revision(revision.as_deref(), &current.doc.latest)?;
            current
                .doc
                .latest
                .status
                .check_updatable(&arn::function_arn(scope, &name))?;
            Ok(update_latest(draft, config, false))
        })
        .await?;
    // Layers $LATEST no longer uses may be used by nothing now.
    cp.collect_code();
    Ok(finish_update(cp, scope, &name, &f, shown))
}

pub async fn delete(
    cp: &ControlPlane,
    scope: &Scope,
    input: QualifiedInput,
) -> Result<DeleteFunctionOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    if fref.qualifier.as_deref().is_some_and(alias::is_alias_name) {
        return Err(LambdaError::invalid(
            "Deletion of aliases is not currently supported.",
        ));
    }
    if fref.qualifier.as_deref() == Some(LATEST) {
        return Err(LambdaError::invalid(
            "$LATEST version cannot be deleted without deleting the function.",
        ));
    }
    let name = fref.name.clone();
    let not_found = || LambdaError::function_not_found(&arn::function_arn(scope, &name));
    let done = DeleteFunctionOutput { status_code: 204 };
    match fref.qualifier.as_deref() {
        None => {
            cp.index.remove(scope, &name, not_found).await?;
            cp.collect_code();
            cp.collect_images().await;
        }
        Some(q) => {
            if cp.index.get(scope, &name).is_none() {
                return Err(not_found());
            }
            // Deleting a version that does not exist succeeds, as on AWS.
            let Some(n) = q.parse::<u64>().ok().filter(|n| n.to_string() == q) else {
                return Ok(done);
            };
            cp.index
                .modify(scope, &name, not_found, |current, draft| {
                    let q = n.to_string();
                    let users: Vec<&str> = current
                        .doc
                        .aliases
                        .values()
                        .filter(|a| a.references(&q))
                        .map(|a| a.name.as_str())
                        .collect();
                    if !users.is_empty() {
                        return Err(LambdaError::conflict(format!(
                            "Unable to delete version because the following aliases reference \
                             it: [{}]",
                            users.join(", ")
                        )));
                    }
                    draft.remove_version(n);
                    crate::sub_resource::forget_qualifier(&mut draft.doc, &q);
                    Ok(())
                })
                .await?;
            cp.collect_code();
            cp.collect_images().await;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
