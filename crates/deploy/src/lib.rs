//! `flint deploy`: a SAM, CloudFormation or CDK (`cdk synth`) template's Lambda resources
//! created or updated in a running Flint, through its Lambda API, as `sam deploy` does against
//! AWS. Other services' resources are listed as skipped; references to them resolve to
//! placeholder names and ARNs that the output states. See docs/deploy.md.

mod client;
mod code;
mod deploy;
mod error;
mod intrinsics;
mod names;
mod other;
mod sam;
mod template;

use std::collections::HashMap;
use std::path::PathBuf;

use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::Credentials;
use serde_json::{json, Value};

pub use error::DeployError;

use crate::error::Result;
use crate::intrinsics::Resolver;
use crate::template::Template;

#[derive(clap::Args, Debug)]
#[command(
    about = "Deploy a SAM, CloudFormation or CDK template's Lambda resources to a running Flint",
    long_about = "Creates or updates the Lambda resources of a template in a running Flint, \
        through its Lambda API (as `sam deploy` does against AWS):\n\
        \n\
        - AWS::Serverless::Function (CodeUri directories zipped, InlineCode, Handler, Runtime, \
        Layers, Environment, Globals, AutoPublishAlias, FunctionUrlConfig, EventInvokeConfig, \
        Events of type SQS, Kinesis, DynamoDB, MSK, MQ and SelfManagedKafka as event source \
        mappings) and AWS::Serverless::LayerVersion;\n\
        - AWS::Lambda::Function (Code.ZipFile, Code.S3Bucket/S3Key, cdk.out assets), \
        LayerVersion, LayerVersionPermission, Version, Alias, Url, Permission, \
        EventSourceMapping, EventInvokeConfig.\n\
        \n\
        Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If, Fn::FindInMap, \
        Conditions and pseudo parameters are resolved; Fn::ImportValue is refused. Resources \
        of other services (SQS queues, IAM roles, tables...) are listed as SKIPPED: a reference \
        to one yields the name/ARN it would have in this account and region (printed), so \
        create it yourself there (e.g. in moto or LocalStack) under that name.\n\
        \n\
        Re-running with the same --stack-name updates in place: code is sent only when its \
        digest changed, configuration only when it changed; resources removed from the \
        template are deleted (--no-delete keeps them). Functions without a FunctionName are \
        named <stack>-<LogicalId>-<SUFFIX>. The stack is recorded in the functions' \
        aws:cloudformation:* tags; no state file is written.\n\
        \n\
        Credentials and region come from the standard AWS chain (AWS_ACCESS_KEY_ID, \
        AWS_PROFILE, ~/.aws); without any, Flint's defaults (test/test). A 12-digit access \
        key id names the account, as Flint reads it."
)]
pub struct DeployArgs {
    /// The template: SAM or CloudFormation, YAML or JSON (e.g. cdk.out/MyStack.template.json).
    /// Default, as sam deploy: .aws-sam/build/template.yaml (after `sam build`), else
    /// template.yaml, else template.yml.
    #[arg(long, short = 't')]
    pub template: Option<PathBuf>,
    /// The stack's name: names generated resources and finds them on the next deploy.
    #[arg(long)]
    pub stack_name: String,
    /// Flint's Lambda API.
    #[arg(
        long,
        env = "FLINT_ENDPOINT_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoint_url: String,
    /// The region (default: AWS_REGION / the profile's, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Parameter values: Key=Value ... (or sam's ParameterKey=K,ParameterValue=V).
    #[arg(long, num_args = 1..)]
    pub parameter_overrides: Vec<String>,
    /// Keep resources that are no longer in the template.
    #[arg(long)]
    pub no_delete: bool,
    /// Create the template's SQS queues, SNS topics, S3 buckets and Kinesis streams at the
    /// AWS endpoint (AWS_ENDPOINT_URL[_SERVICE], the profile, or --aws-endpoint-url) instead
    /// of skipping them; existing ones are used as they are, none is ever deleted.
    #[arg(long)]
    pub create_other_resources: bool,
    /// Where --create-other-resources creates them (e.g. moto or LocalStack); a per-service
    /// AWS_ENDPOINT_URL_<SERVICE> still wins, as in flint serve.
    #[arg(long)]
    pub aws_endpoint_url: Option<String>,
    /// Deploy functions whose code is a local directory with hot reload (LocalStack's
    /// convention, docs/code-from-s3.md): Flint mounts the directory instead of a copy, so an
    /// edit shows at the next invoke without deploying again. Needs Flint on the same host.
    #[arg(long)]
    pub hot_reload: bool,
    /// The hot-reload bucket name flint serve was given (--hot-reload-bucket).
    #[arg(long, default_value = "hot-reload")]
    pub hot_reload_bucket: String,
}

/// Runs a deploy to completion (its own runtime: the command is a short-lived client).
pub fn run(args: DeployArgs) -> std::result::Result<(), DeployError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DeployError::Usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(deploy(args))
}

async fn deploy(args: DeployArgs) -> Result<()> {
    check_stack_name(&args.stack_name)?;
    let path = args.template.clone().unwrap_or_else(default_template);
    let mut template = Template::load(&path)?;
    let (credentials, region) = credentials_and_region(args.region.clone()).await;
    let account = account_of(credentials.access_key_id());
    let mut resolver = Resolver {
        region: region.clone(),
        account,
        stack_name: args.stack_name.clone(),
        mappings: template.mappings.clone(),
        ..Default::default()
    };
    resolver.parameters = parameters(&template, &args.parameter_overrides)?;
    resolver.evaluate_conditions(&template.conditions.clone())?;
    let mut warnings = cdk_assets(&mut template);
    if template.is_sam {
        let out = sam::transform(&mut template)?;
        resolver.ref_aliases = out.ref_aliases;
        warnings.extend(out.warnings);
    }
    let client = client::LambdaClient::new(&args.endpoint_url, &region, credentials)?;
    let other_services = if args.create_other_resources {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .region(aws_config::Region::new(region.clone()));
        if let Some(url) = &args.aws_endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let custom = args.aws_endpoint_url.is_some()
            || std::env::vars().any(|(k, _)| k.starts_with("AWS_ENDPOINT_URL"));
        Some(other::OtherServices::new(loader.load().await, custom))
    } else {
        None
    };
    let deployer = deploy::Deployer::new(
        client,
        resolver,
        template,
        deploy::Options {
            stack_name: args.stack_name.clone(),
            delete_removed: !args.no_delete,
            other_services,
            hot_reload_bucket: args.hot_reload.then(|| args.hot_reload_bucket.clone()),
        },
    );
    for (logical, w) in &warnings {
        deployer.warn(logical, w);
    }
    deployer.run().await
}

/// CloudFormation's rule for stack names (they become parts of function names and statement
/// ids, which allow no more).
fn check_stack_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(DeployError::Usage(format!(
            "--stack-name {name:?}: a stack name starts with a letter and has only letters, \
             digits and hyphens (at most 128)"
        )))
    }
}

/// The template `sam deploy` would take in the current directory.
fn default_template() -> PathBuf {
    [
        ".aws-sam/build/template.yaml",
        "template.yaml",
        "template.yml",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from("template.yaml"))
}

/// The standard chain's credentials, or Flint's defaults when it has none.
async fn credentials_and_region(region: Option<String>) -> (Credentials, String) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await;
    let region = region
        .or_else(|| config.region().map(|r| r.to_string()))
        .unwrap_or_else(|| "us-east-1".to_string());
    let credentials = match config.credentials_provider() {
        Some(p) => p.provide_credentials().await.ok(),
        None => None,
    };
    let credentials = credentials
        .unwrap_or_else(|| Credentials::new("test", "test", None, None, "flint-defaults"));
    (credentials, region)
}

fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The account Flint serves this caller as: a 12-digit access key id names it.
fn account_of(access_key: &str) -> String {
    if access_key.len() == 12 && access_key.bytes().all(|b| b.is_ascii_digit()) {
        access_key.to_string()
    } else {
        "000000000000".to_string()
    }
}

/// The template's parameters: overrides, else defaults; AllowedValues checked.
fn parameters(template: &Template, overrides: &[String]) -> Result<HashMap<String, Value>> {
    let mut given: HashMap<String, String> = HashMap::new();
    for o in overrides {
        if let Some(rest) = o.strip_prefix("ParameterKey=") {
            let Some((k, v)) = rest.split_once(",ParameterValue=") else {
                return Err(DeployError::Parameter(format!(
                    "{o}: expected ParameterKey=K,ParameterValue=V"
                )));
            };
            given.insert(k.to_string(), v.to_string());
        } else if let Some((k, v)) = o.split_once('=') {
            given.insert(k.to_string(), v.to_string());
        } else {
            return Err(DeployError::Parameter(format!("{o}: expected Key=Value")));
        }
    }
    for k in given.keys() {
        if !template.parameters.contains_key(k) {
            return Err(DeployError::Parameter(format!(
                "{k} is not a parameter of the template"
            )));
        }
    }
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    for (name, decl) in &template.parameters {
        let kind = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
        let value = match given.get(name) {
            Some(v) => v.clone(),
            None => match decl.get("Default") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                Some(other) => other.to_string(),
                None => {
                    missing.push(name.clone());
                    continue;
                }
            },
        };
        if let Some(Value::Array(allowed)) = decl.get("AllowedValues") {
            let ok = allowed.iter().any(|a| match a {
                Value::String(s) => s == &value,
                other => {
                    let text = other.to_string();
                    text == value
                }
            });
            if !ok {
                return Err(DeployError::Parameter(format!(
                    "{name}: {value:?} is not one of AllowedValues {}",
                    Value::Array(allowed.clone())
                )));
            }
        }
        let value = if kind == "CommaDelimitedList" || kind.starts_with("List<") {
            json!(value.split(',').map(str::trim).collect::<Vec<_>>())
        } else {
            Value::String(value)
        };
        out.insert(name.clone(), value);
    }
    if !missing.is_empty() {
        return Err(DeployError::Parameter(format!(
            "[{}] must have values (--parameter-overrides {}=...)",
            missing.join(", "),
            missing[0]
        )));
    }
    Ok(out)
}

/// `cdk synth`'s assets: a resource whose Metadata names `aws:asset:path` and
/// `aws:asset:property` gets that property pointed at the local asset (a directory or zip in
/// cdk.out) instead of the bootstrap bucket, which Flint's S3 would not have.
fn cdk_assets(template: &mut Template) -> Vec<(String, String)> {
    let mut warnings = Vec::new();
    for (logical, resource) in template.resources.iter_mut() {
        let Some(meta) = resource.get("Metadata") else {
            continue;
        };
        let (Some(path), Some(property)) = (
            meta.get("aws:asset:path").and_then(Value::as_str),
            meta.get("aws:asset:property").and_then(Value::as_str),
        ) else {
            continue;
        };
        let (path, property) = (path.to_string(), property.to_string());
        if property != "Code" && property != "Content" {
            // Container image assets (`Code.ImageUri`) are built by Docker: not done here.
            warnings.push((
                logical.clone(),
                format!(
                    "asset {path} ({property}) is not a zip asset; push its image to a \
                     registry Flint reaches and set the property to it"
                ),
            ));
            continue;
        }
        if let Some(Value::Object(props)) = resource.get_mut("Properties") {
            props.insert(property, json!({ sam::LOCAL_PATH: path }));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(v: Value) -> Template {
        Template::from_value(v, PathBuf::from(".")).unwrap()
    }

    #[test]
    fn parameters_take_overrides_defaults_and_lists() {
        let t = template(json!({
            "Parameters": {"Stage": {"Type": "String", "Default": "dev",
                                     "AllowedValues": ["dev", "prod"]},
                           "Ids": {"Type": "CommaDelimitedList"},
                           "Mem": {"Type": "Number", "Default": 128}},
            "Resources": {"F": {"Type": "AWS::Lambda::Function"}}}));
        let p = parameters(
            &t,
            &[
                "Ids=a, b".into(),
                "ParameterKey=Stage,ParameterValue=prod".into(),
            ],
        )
        .unwrap();
        assert_eq!(p["Stage"], "prod");
        assert_eq!(p["Ids"], json!(["a", "b"]));
        assert_eq!(p["Mem"], "128");
        let e = parameters(&t, &[]).unwrap_err();
        assert!(e.to_string().contains("[Ids] must have values"), "{e}");
        let e = parameters(&t, &["Ids=x".into(), "Stage=qa".into()]).unwrap_err();
        assert!(e.to_string().contains("not one of AllowedValues"), "{e}");
        let e = parameters(&t, &["Nope=1".into()]).unwrap_err();
        assert!(e.to_string().contains("Nope is not a parameter"), "{e}");
    }

    #[test]
    fn cdk_assets_point_at_the_local_asset() {
        let mut t = template(json!({"Resources": {"Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Code": {"S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                                    "S3Key": "abc.zip"}},
            "Metadata": {"aws:asset:path": "asset.abc", "aws:asset:property": "Code"}}}}));
        cdk_assets(&mut t);
        assert_eq!(
            t.resources["Fn"]["Properties"]["Code"],
            json!({"Flint::Path": "asset.abc"})
        );
    }

    #[test]
    fn stack_names_follow_cloudformations_rule() {
        assert!(check_stack_name("my-app-2").is_ok());
        for bad in ["", "2app", "my_app", "my app", "é"] {
            assert!(check_stack_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_twelve_digit_key_names_the_account() {
        assert_eq!(account_of("123456789012"), "123456789012");
        assert_eq!(account_of("AKIDTEST"), "000000000000");
    }
}
