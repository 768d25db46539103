//! The SAM transform (`AWS::Serverless-2016-10-31`) for the resources Flint runs: a
//! `AWS::Serverless::Function` becomes the `AWS::Lambda::*` resources SAM generates (function,
//! version and alias for `AutoPublishAlias`, URL and its public permission, event source
//! mappings, event invoke config, and the IAM role that Flint skips), with `Globals` merged in
//! as SAM merges them; `AWS::Serverless::LayerVersion` becomes `AWS::Lambda::LayerVersion`.
//! Logical ids follow SAM's (`FnAliaslive`, `FnUrl`, `FnUrlPublicPermissions`, `Fn<EventId>`).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::error::{DeployError, Result};
use crate::template::Template;

/// The marker a local code location becomes (`Code`/`Content` = `{"Flint::Path": "dir"}`),
/// packaged by the deployer.
pub const LOCAL_PATH: &str = "Flint::Path";

/// What the transform produced besides resources.
#[derive(Debug, Default)]
pub struct Transformed {
    pub warnings: Vec<(String, String)>,
    /// `Fn.Alias` / `Fn.Version` → the logical id SAM generated for it.
    pub ref_aliases: HashMap<String, String>,
}

/// Rewrites `template.resources` in place.
pub fn transform(template: &mut Template) -> Result<Transformed> {
    let mut out = Transformed::default();
    let function_globals = template
        .globals
        .get("Function")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let layer_globals = template
        .globals
        .get("LayerVersion")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for section in template.globals.keys() {
        if section != "Function" && section != "LayerVersion" {
            out.warnings.push((
                "Globals".to_string(),
                format!("Globals.{section} ignored: Flint deploys only Lambda resources"),
            ));
        }
    }
    let mut resources = Map::new();
    let input = std::mem::take(&mut template.resources);
    for (id, resource) in input {
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "AWS::Serverless::Function" => {
                let props = merge(
                    &Value::Object(function_globals.clone()),
                    resource.get("Properties").unwrap_or(&json!({})),
                );
                function(&id, &resource, props, &mut resources, &mut out)?;
            }
            "AWS::Serverless::LayerVersion" => {
                let props = merge(
                    &Value::Object(layer_globals.clone()),
                    resource.get("Properties").unwrap_or(&json!({})),
                );
                layer(&id, &resource, props, &mut resources);
            }
            _ => {
                resources.insert(id, resource);
            }
        }
    }
    template.resources = resources;
    Ok(out)
}

/// SAM's merge of a Globals section under a resource's properties: mappings merge (the
/// resource's keys win), lists concatenate (globals first), anything else is the resource's.
pub fn merge(global: &Value, local: &Value) -> Value {
    match (global, local) {
        (Value::Object(g), Value::Object(l)) if !is_intrinsic(g) && !is_intrinsic(l) => {
            let mut out = g.clone();
            for (k, v) in l {
                let merged = match g.get(k) {
                    Some(gv) => merge(gv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(g), Value::Array(l)) => {
            Value::Array(g.iter().chain(l.iter()).cloned().collect())
        }
        (_, l) => l.clone(),
    }
}

fn is_intrinsic(m: &Map<String, Value>) -> bool {
    m.len() == 1
        && m.keys()
            .next()
            .is_some_and(|k| k == "Ref" || k.starts_with("Fn::") || k == "Condition")
}

/// Keys of a resource besides Type and Properties that the generated resources inherit.
fn carry(resource: &Value, kind: &str, properties: Value) -> Value {
    let mut out = Map::new();
    out.insert("Type".into(), kind.into());
    out.insert("Properties".into(), properties);
    for key in ["Condition", "DependsOn", "Metadata"] {
        if let Some(v) = resource.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn layer(id: &str, resource: &Value, props: Value, resources: &mut Map<String, Value>) {
    let mut p = Map::new();
    p.insert(
        "LayerName".into(),
        props.get("LayerName").cloned().unwrap_or_else(|| id.into()),
    );
    p.insert(
        "Content".into(),
        code_location(props.get("ContentUri"), None),
    );
    for (from, to) in [
        ("CompatibleRuntimes", "CompatibleRuntimes"),
        ("CompatibleArchitectures", "CompatibleArchitectures"),
        ("Description", "Description"),
        ("LicenseInfo", "LicenseInfo"),
    ] {
        if let Some(v) = props.get(from) {
            p.insert(to.into(), v.clone());
        }
    }
    resources.insert(
        id.to_string(),
        carry(resource, "AWS::Lambda::LayerVersion", Value::Object(p)),
    );
}

/// A SAM CodeUri/ContentUri: `s3://bucket/key`, `{Bucket, Key, Version}`, or a local path
/// (the template's directory when absent).
fn code_location(uri: Option<&Value>, inline: Option<&Value>) -> Value {
    if let Some(code) = inline {
        return json!({"ZipFile": code});
    }
    match uri {
        Some(Value::String(s)) if s.starts_with("s3://") => {
            let rest = &s["s3://".len()..];
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            json!({"S3Bucket": bucket, "S3Key": key})
        }
        Some(Value::Object(m)) if m.contains_key("Bucket") => {
            let mut out = Map::new();
            out.insert("S3Bucket".into(), m["Bucket"].clone());
            if let Some(k) = m.get("Key") {
                out.insert("S3Key".into(), k.clone());
            }
            if let Some(v) = m.get("Version") {
                out.insert("S3ObjectVersion".into(), v.clone());
            }
            Value::Object(out)
        }
        Some(other) => json!({ LOCAL_PATH: other }),
        None => json!({ LOCAL_PATH: "." }),
    }
}

/// Properties of AWS::Serverless::Function copied unchanged to AWS::Lambda::Function.
const SAME_NAME: &[&str] = &[
    "FunctionName",
    "Handler",
    "Runtime",
    "MemorySize",
    "Timeout",
    "Role",
    "Environment",
    "Layers",
    "Architectures",
    "Description",
    "EphemeralStorage",
    "KmsKeyArn",
    "VpcConfig",
    "ReservedConcurrentExecutions",
    "PackageType",
    "ImageConfig",
    "LoggingConfig",
    "SnapStart",
    "RuntimeManagementConfig",
    "FileSystemConfigs",
    "CodeSigningConfigArn",
    "RecursiveLoop",
];

/// SAM properties Flint accepts and does nothing with (IAM is not emulated).
const IGNORED: &[&str] = &[
    "Policies",
    "PermissionsBoundary",
    "AssumeRolePolicyDocument",
    "RolePath",
    "ProvisionedConcurrencyConfig",
    "AutoPublishCodeSha256",
    "AutoPublishAliasAllProperties",
    "VersionDescription",
    "InlineCode",
    "CodeUri",
    "ImageUri",
    "Tracing",
    "DeadLetterQueue",
    "Tags",
    "Events",
    "FunctionUrlConfig",
    "AutoPublishAlias",
    "DeploymentPreference",
    "EventInvokeConfig",
];

fn function(
    id: &str,
    resource: &Value,
    props: Value,
    resources: &mut Map<String, Value>,
    out: &mut Transformed,
) -> Result<()> {
    let Value::Object(src) = &props else {
        return Err(DeployError::Resource {
            logical_id: id.to_string(),
            message: "Properties is not a mapping".to_string(),
        });
    };
    let mut p = Map::new();
    for key in SAME_NAME {
        if let Some(v) = src.get(*key) {
            p.insert((*key).to_string(), v.clone());
        }
    }
    for key in src.keys() {
        if !SAME_NAME.contains(&key.as_str()) && !IGNORED.contains(&key.as_str()) {
            out.warnings.push((
                id.to_string(),
                format!("property {key} is not supported by flint deploy and was ignored"),
            ));
        }
    }
    if src.get("PackageType").and_then(Value::as_str) == Some("Image") {
        p.insert(
            "Code".into(),
            json!({"ImageUri": src.get("ImageUri").cloned().unwrap_or(Value::Null)}),
        );
    } else {
        p.insert(
            "Code".into(),
            code_location(src.get("CodeUri"), src.get("InlineCode")),
        );
    }
    if !p.contains_key("Role") {
        // SAM creates `<Fn>Role` (an IAM role): Flint lists it as skipped and uses its ARN.
        let role_id = format!("{id}Role");
        resources.insert(
            role_id.clone(),
            carry(resource, "AWS::IAM::Role", json!({})),
        );
        p.insert("Role".into(), json!({"Fn::GetAtt": [role_id, "Arn"]}));
    }
    if let Some(mode) = src.get("Tracing") {
        p.insert("TracingConfig".into(), json!({ "Mode": mode }));
    }
    if let Some(dlq) = src.get("DeadLetterQueue") {
        p.insert(
            "DeadLetterConfig".into(),
            json!({"TargetArn": dlq.get("TargetArn").cloned().unwrap_or(Value::Null)}),
        );
    }
    let mut tags = vec![json!({"Key": "lambda:createdBy", "Value": "SAM"})];
    if let Some(Value::Object(t)) = src.get("Tags") {
        for (k, v) in t {
            tags.push(json!({"Key": k, "Value": v}));
        }
    }
    p.insert("Tags".into(), Value::Array(tags));
    resources.insert(
        id.to_string(),
        carry(resource, "AWS::Lambda::Function", Value::Object(p)),
    );

    // What the function's other resources point at: its alias when it has one.
    let mut target = json!({"Ref": id});
    let mut qualifier: Option<Value> = None;
    if let Some(alias) = src.get("AutoPublishAlias") {
        let alias_name = match alias {
            Value::String(s) => s.clone(),
            _ => {
                return Err(DeployError::Resource {
                    logical_id: id.to_string(),
                    message: "AutoPublishAlias must be a string".to_string(),
                })
            }
        };
        let version_id = format!("{id}Version");
        let alias_id = format!("{id}Alias{alias_name}");
        let mut vp = Map::new();
        vp.insert("FunctionName".into(), json!({"Ref": id}));
        if let Some(d) = src.get("VersionDescription") {
            vp.insert("Description".into(), d.clone());
        }
        resources.insert(
            version_id.clone(),
            carry(resource, "AWS::Lambda::Version", Value::Object(vp)),
        );
        resources.insert(
            alias_id.clone(),
            carry(
                resource,
                "AWS::Lambda::Alias",
                json!({"Name": alias_name, "FunctionName": {"Ref": id},
                       "FunctionVersion": {"Fn::GetAtt": [version_id, "Version"]}}),
            ),
        );
        out.ref_aliases.insert(format!("{id}.Version"), version_id);
        out.ref_aliases
            .insert(format!("{id}.Alias"), alias_id.clone());
        target = json!({"Ref": alias_id});
        qualifier = Some(Value::String(alias_name));
    }
    if src.contains_key("DeploymentPreference") {
        out.warnings.push((
            id.to_string(),
            "DeploymentPreference ignored: Flint moves the alias at once (no CodeDeploy \
             traffic shifting)"
                .to_string(),
        ));
    }
    if src.contains_key("ProvisionedConcurrencyConfig") {
        out.warnings.push((
            id.to_string(),
            "ProvisionedConcurrencyConfig ignored by flint deploy".to_string(),
        ));
    }
    if let Some(Value::Object(url)) = src.get("FunctionUrlConfig") {
        let mut up = url.clone();
        up.insert("TargetFunctionArn".into(), json!({"Ref": id}));
        if let Some(q) = &qualifier {
            up.insert("Qualifier".into(), q.clone());
        }
        resources.insert(
            format!("{id}Url"),
            carry(resource, "AWS::Lambda::Url", Value::Object(up)),
        );
        if url.get("AuthType").and_then(Value::as_str) == Some("NONE") {
            resources.insert(
                format!("{id}UrlPublicPermissions"),
                carry(
                    resource,
                    "AWS::Lambda::Permission",
                    json!({"Action": "lambda:InvokeFunctionUrl", "FunctionName": target,
                           "Principal": "*", "FunctionUrlAuthType": "NONE"}),
                ),
            );
            // AWS also requires lambda:InvokeFunction (via the URL) of a public URL since 2025.
            resources.insert(
                format!("{id}UrlPublicInvokePermissions"),
                carry(
                    resource,
                    "AWS::Lambda::Permission",
                    json!({"Action": "lambda:InvokeFunction", "FunctionName": target,
                           "Principal": "*", "InvokedViaFunctionUrl": true}),
                ),
            );
        }
    }
    if let Some(Value::Object(eic)) = src.get("EventInvokeConfig") {
        let mut ep = Map::new();
        ep.insert("FunctionName".into(), json!({"Ref": id}));
        ep.insert(
            "Qualifier".into(),
            qualifier.clone().unwrap_or_else(|| "$LATEST".into()),
        );
        for key in ["MaximumEventAgeInSeconds", "MaximumRetryAttempts"] {
            if let Some(v) = eic.get(key) {
                ep.insert(key.into(), v.clone());
            }
        }
        if let Some(Value::Object(dc)) = eic.get("DestinationConfig") {
            let mut d = Map::new();
            for (k, v) in dc {
                // SAM's {Type, Destination}: CloudFormation's is {Destination}.
                d.insert(
                    k.clone(),
                    json!({"Destination": v.get("Destination").cloned().unwrap_or(Value::Null)}),
                );
            }
            ep.insert("DestinationConfig".into(), Value::Object(d));
        }
        resources.insert(
            format!("{id}EventInvokeConfig"),
            carry(
                resource,
                "AWS::Lambda::EventInvokeConfig",
                Value::Object(ep),
            ),
        );
    }
    if let Some(Value::Object(events)) = src.get("Events") {
        for (event_id, event) in events {
            let kind = event.get("Type").and_then(Value::as_str).unwrap_or("");
            let ep = event.get("Properties").cloned().unwrap_or(json!({}));
            match event_source_mapping(kind, &ep) {
                Some(mut m) => {
                    m.insert("FunctionName".into(), target.clone());
                    resources.insert(
                        format!("{id}{event_id}"),
                        carry(
                            resource,
                            "AWS::Lambda::EventSourceMapping",
                            Value::Object(m),
                        ),
                    );
                }
                None => out.warnings.push((
                    id.to_string(),
                    format!("event {event_id} (Type {kind}) skipped: {}", unmapped(kind)),
                )),
            }
        }
    }
    Ok(())
}

/// A SAM event of a polled source as CloudFormation's event source mapping properties.
fn event_source_mapping(kind: &str, props: &Value) -> Option<Map<String, Value>> {
    let Value::Object(src) = props else {
        return None;
    };
    let source_key = match kind {
        "SQS" => "Queue",
        "Kinesis" | "DynamoDB" | "MSK" => "Stream",
        "MQ" => "Broker",
        "SelfManagedKafka" => "",
        _ => return None,
    };
    let mut m = Map::new();
    for (k, v) in src {
        match k.as_str() {
            k if k == source_key => {
                m.insert("EventSourceArn".into(), v.clone());
            }
            "KafkaBootstrapServers" => {
                m.insert(
                    "SelfManagedEventSource".into(),
                    json!({"Endpoints": {"KafkaBootstrapServers": v}}),
                );
            }
            "DestinationConfig" => {
                // SAM's OnFailure {Type, Destination}: CloudFormation's has no Type.
                let mut d = v.clone();
                if let Some(Value::Object(on_failure)) = d.get_mut("OnFailure") {
                    on_failure.remove("Type");
                }
                m.insert(k.into(), d);
            }
            _ => {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    Some(m)
}

fn unmapped(kind: &str) -> &'static str {
    match kind {
        "Schedule" | "ScheduleV2" => {
            "needs EventBridge (Scheduler) rules, which Flint does not run; invoke the function \
             on a timer yourself"
        }
        "Api" | "HttpApi" => {
            "needs API Gateway, which Flint does not have; use FunctionUrlConfig (a function \
             URL) instead"
        }
        "S3" => "needs S3 bucket notifications pointed at Flint, which S3 cannot do",
        "SNS" => "needs an SNS subscription that invokes Flint, which SNS cannot do",
        "EventBridgeRule" | "CloudWatchEvent" => {
            "needs an EventBridge rule whose target is Flint, which EventBridge cannot do"
        }
        _ => "this event type is not supported by Flint",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn transformed(v: Value) -> (Template, Transformed) {
        let mut t = Template::from_value(v, PathBuf::from(".")).unwrap();
        let out = transform(&mut t).unwrap();
        (t, out)
    }

    #[test]
    fn globals_merge_as_sam_merges_them() {
        let g = json!({"Runtime": "python3.12", "Environment": {"Variables": {"A": "1", "B": "2"}},
                       "Layers": ["l1"]});
        let l = json!({"Environment": {"Variables": {"B": "3"}}, "Layers": ["l2"],
                       "Runtime": "python3.11"});
        assert_eq!(
            merge(&g, &l),
            json!({"Runtime": "python3.11", "Environment": {"Variables": {"A": "1", "B": "3"}},
                   "Layers": ["l1", "l2"]})
        );
    }

    #[test]
    fn a_serverless_function_becomes_sams_lambda_resources() {
        let (t, out) = transformed(json!({
            "Transform": "AWS::Serverless-2016-10-31",
            "Globals": {"Function": {"Timeout": 9}},
            "Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {
                "CodeUri": "src/", "Handler": "app.handler", "Runtime": "python3.12",
                "AutoPublishAlias": "live",
                "FunctionUrlConfig": {"AuthType": "NONE"},
                "DeploymentPreference": {"Type": "AllAtOnce"},
                "Events": {"Q": {"Type": "SQS", "Properties": {"Queue": "arn:q", "BatchSize": 5}},
                           "Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}}
            }}}
        }));
        let ids: Vec<&String> = t.resources.keys().collect();
        assert_eq!(
            ids,
            [
                "FnRole",
                "Fn",
                "FnVersion",
                "FnAliaslive",
                "FnUrl",
                "FnUrlPublicPermissions",
                "FnUrlPublicInvokePermissions",
                "FnQ"
            ]
        );
        let f = &t.resources["Fn"]["Properties"];
        assert_eq!(f["Timeout"], 9);
        assert_eq!(f["Code"], json!({"Flint::Path": "src/"}));
        assert_eq!(f["Role"], json!({"Fn::GetAtt": ["FnRole", "Arn"]}));
        assert_eq!(t.resources["FnUrl"]["Properties"]["Qualifier"], "live");
        assert_eq!(
            t.resources["FnQ"]["Properties"],
            json!({"EventSourceArn": "arn:q", "BatchSize": 5, "FunctionName": {"Ref": "FnAliaslive"}})
        );
        assert_eq!(out.ref_aliases["Fn.Alias"], "FnAliaslive");
        let warnings: Vec<_> = out.warnings.iter().map(|(_, w)| w.as_str()).collect();
        assert!(warnings
            .iter()
            .any(|w| w.starts_with("DeploymentPreference ignored")));
        assert!(warnings
            .iter()
            .any(|w| w.starts_with("event Tick (Type Schedule) skipped")));
    }

    #[test]
    fn stream_and_kafka_events_become_mappings_in_cloudformations_shape() {
        let (t, _) = transformed(json!({"Resources": {"Fn": {
            "Type": "AWS::Serverless::Function",
            "Properties": {"Handler": "a.h", "Runtime": "python3.12", "Events": {
                "K": {"Type": "Kinesis", "Properties": {
                    "Stream": "arn:k", "StartingPosition": "LATEST",
                    "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": "arn:q"}}}},
                "Kafka": {"Type": "SelfManagedKafka", "Properties": {
                    "KafkaBootstrapServers": ["b:9092"], "Topics": ["t"]}}}}}}}));
        assert_eq!(
            t.resources["FnK"]["Properties"],
            json!({"EventSourceArn": "arn:k", "StartingPosition": "LATEST",
                   "DestinationConfig": {"OnFailure": {"Destination": "arn:q"}},
                   "FunctionName": {"Ref": "Fn"}})
        );
        assert_eq!(
            t.resources["FnKafka"]["Properties"],
            json!({"SelfManagedEventSource": {"Endpoints": {"KafkaBootstrapServers": ["b:9092"]}},
                   "Topics": ["t"], "FunctionName": {"Ref": "Fn"}})
        );
    }

    #[test]
    fn code_uri_forms() {
        assert_eq!(
            code_location(Some(&json!("s3://b/k/x.zip")), None),
            json!({"S3Bucket": "b", "S3Key": "k/x.zip"})
        );
        assert_eq!(
            code_location(
                Some(&json!({"Bucket": "b", "Key": "k", "Version": "3"})),
                None
            ),
            json!({"S3Bucket": "b", "S3Key": "k", "S3ObjectVersion": "3"})
        );
        assert_eq!(code_location(None, None), json!({"Flint::Path": "."}));
        assert_eq!(
            code_location(None, Some(&json!("def h(e, c): pass"))),
            json!({"ZipFile": "def h(e, c): pass"})
        );
    }

    #[test]
    fn a_serverless_layer_is_named_after_its_logical_id() {
        let (t, _) = transformed(json!({"Resources": {"Deps": {
            "Type": "AWS::Serverless::LayerVersion",
            "Properties": {"ContentUri": "layer/", "CompatibleRuntimes": ["python3.12"]}}}}));
        assert_eq!(
            t.resources["Deps"]["Properties"],
            json!({"LayerName": "Deps", "Content": {"Flint::Path": "layer/"},
                   "CompatibleRuntimes": ["python3.12"]})
        );
    }
}
