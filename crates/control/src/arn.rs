//! ARNs as Lambda spells them. Every ARN the control plane hands out is built here, so the
//! partition, the qualifier syntax and the runtime-version ARN format live in one place.

use sha2::{Digest, Sha256};

use crate::Scope;

/// Flint only serves the commercial partition.
pub const PARTITION: &str = "aws";

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
pub fn function_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:{PARTITION}:lambda:{}:{}:function:{name}",
        scope.region, scope.account
    )
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
    fn runtime_version_arn_is_stable_and_differs_per_runtime() {
        let a = runtime_version_arn("us-east-1", "python3.12");
        assert_eq!(a, runtime_version_arn("us-east-1", "python3.12"));
        assert_ne!(a, runtime_version_arn("us-east-1", "python3.11"));
        let digest = a.rsplit(':').next().unwrap_or_default();
        assert_eq!(digest.len(), 64);
        assert!(a.starts_with("arn:aws:lambda:us-east-1::runtime:"));
    }
}
