//! ARNs as Lambda spells them. Every ARN the control plane hands out is built here, so the
//! partition, the qualifier syntax and the runtime-version ARN format live in one place.

use sha2::{Digest, Sha256};

use crate::Scope;

/// Flint only serves the commercial partition.
pub const PARTITION: &str = "aws";

/// `arn:aws:lambda:REGION:ACCOUNT:RESOURCE`: every Lambda resource ARN of a scope.
pub fn lambda_arn(scope: &Scope, resource: &str) -> String {
    format!(
        "arn:{PARTITION}:lambda:{}:{}:{resource}",
        scope.region, scope.account
    )
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
pub fn function_arn(scope: &Scope, name: &str) -> String {
    lambda_arn(scope, &format!("function:{name}"))
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER`.
pub fn qualified_function_arn(scope: &Scope, name: &str, qualifier: &str) -> String {
    format!("{}:{qualifier}", function_arn(scope, name))
}

/// The ARN a caller addressed: qualified only when they gave a qualifier.
pub fn addressed_function_arn(scope: &Scope, name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => qualified_function_arn(scope, name, q),
        None => function_arn(scope, name),
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:layer:NAME`.
pub fn layer_arn(scope: &Scope, name: &str) -> String {
    lambda_arn(scope, &format!("layer:{name}"))
}

/// `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`.
pub fn layer_version_arn(scope: &Scope, name: &str, version: u64) -> String {
    format!("{}:{version}", layer_arn(scope, name))
}

/// The prefix of the scope's code signing config ARNs (`...:code-signing-config:`).
pub fn code_signing_config_prefix(scope: &Scope) -> String {
    lambda_arn(scope, "code-signing-config:")
}

/// `arn:aws:lambda:REGION:ACCOUNT:code-signing-config:ID`.
pub fn code_signing_config_arn(scope: &Scope, id: &str) -> String {
    format!("{}{id}", code_signing_config_prefix(scope))
}

/// The prefix of the scope's event source mapping ARNs (`...:event-source-mapping:`).
pub fn event_source_mapping_prefix(scope: &Scope) -> String {
    lambda_arn(scope, "event-source-mapping:")
}

/// `arn:aws:lambda:REGION:ACCOUNT:event-source-mapping:UUID`.
pub fn event_source_mapping_arn(scope: &Scope, uuid: &str) -> String {
    format!("{}{uuid}", event_source_mapping_prefix(scope))
}

/// `arn:aws:iam::ACCOUNT:root`: an account as a policy principal.
pub fn account_root(account: &str) -> String {
    format!("arn:{PARTITION}:iam::{account}:root")
}

/// `arn:aws:lambda:REGION::runtime:<64 hex>`. AWS identifies a runtime build by an opaque digest;
/// ours is derived from the runtime id so it is stable across restarts and machines.
pub fn runtime_version_arn(region: &str, runtime: &str) -> String {
    let digest = hex::encode(Sha256::digest(
        format!("flint-runtime:{runtime}").as_bytes(),
    ));
    format!("arn:{PARTITION}:lambda:{region}::runtime:{digest}")
}

/// The default CloudWatch log group of a function.
pub fn default_log_group(name: &str) -> String {
    format!("/aws/lambda/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn function_arns_carry_scope_and_qualifier() {
        assert_eq!(
            function_arn(&scope(), "f"),
            "arn:aws:lambda:eu-west-1:123456789012:function:f"
        );
        assert_eq!(
            qualified_function_arn(&scope(), "f", "$LATEST"),
            "arn:aws:lambda:eu-west-1:123456789012:function:f:$LATEST"
        );
        assert_eq!(
            addressed_function_arn(&scope(), "f", None),
            function_arn(&scope(), "f")
        );
    }

    #[test]
    fn resource_arns_name_their_kind() {
        assert_eq!(
            layer_version_arn(&scope(), "l", 3),
            "arn:aws:lambda:eu-west-1:123456789012:layer:l:3"
        );
        assert_eq!(
            code_signing_config_arn(&scope(), "csc-1"),
            "arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-1"
        );
        assert_eq!(
            event_source_mapping_arn(&scope(), "u"),
            "arn:aws:lambda:eu-west-1:123456789012:event-source-mapping:u"
        );
        assert_eq!(account_root("1"), "arn:aws:iam::1:root");
    }

    #[test]
    fn runtime_version_arn_is_stable_and_differs_per_runtime() {
        let a = runtime_version_arn("us-east-1", "python3.12");
        assert_eq!(a, runtime_version_arn("us-east-1", "python3.12"));
        assert_ne!(a, runtime_version_arn("us-east-1", "python3.11"));
        let digest = a.rsplit(':').next().unwrap_or_default();
        assert_eq!(digest.len(), 64);
        assert!(a.starts_with("arn:aws:lambda:us-east-1::runtime:"));
    }
}
