//! Recursive loop detection: Get/PutFunctionRecursionConfig — whether Lambda stops a function
//! that invokes itself in a loop (`Terminate`, the default) or lets it run (`Allow`).

use serde::{Deserialize, Serialize};

use crate::function_name::{self, FunctionRef};
use crate::{ControlPlane, LambdaError, Scope};

/// AWS's default.
pub const TERMINATE: &str = "Terminate";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetInput {
    pub function_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutInput {
    pub function_name: String,
    pub recursive_loop: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub recursive_loop: String,
}

impl ControlPlane {
    /// Whether recursive invocation loops of this function may run (`RecursiveLoop = Allow`).
    pub fn recursion_allowed(&self, scope: &Scope, function_name: &str) -> bool {
        self.index
            .get(scope, function_name)
            .is_some_and(|f| f.doc.settings.recursive_loop.as_deref() == Some("Allow"))
    }
}

fn unqualified(scope: &Scope, function_name: &str) -> Result<FunctionRef, LambdaError> {
    let fref = function_name::resolve(scope, function_name, None)?;
    if fref.qualifier.is_some() {
        return Err(LambdaError::unqualified_only());
    }
    Ok(fref)
}

pub async fn get(cp: &ControlPlane, scope: &Scope, input: GetInput) -> Result<Output, LambdaError> {
    let fref = unqualified(scope, &input.function_name)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.unqualified_arn(scope)))?;
    Ok(Output {
        recursive_loop: f
            .doc
            .settings
            .recursive_loop
            .clone()
            .unwrap_or_else(|| TERMINATE.into()),
    })
}

pub async fn put(cp: &ControlPlane, scope: &Scope, input: PutInput) -> Result<Output, LambdaError> {
    let value = input.recursive_loop;
    if value != "Allow" && value != TERMINATE {
        return Err(LambdaError::validation(format!(
            "1 validation error detected: Value '{value}' at 'recursiveLoop' failed to satisfy \
             constraint: Member must satisfy enum value set: [Terminate, Allow]"
        )));
    }
    let fref = unqualified(scope, &input.function_name)?;
    let not_found = || LambdaError::function_not_found(&fref.unqualified_arn(scope));
    cp.index
        .modify(scope, &fref.name, not_found, |_, draft| {
            draft.doc.settings.recursive_loop = Some(value.clone());
            Ok(())
        })
        .await?;
    Ok(Output {
        recursive_loop: value,
    })
}

#[cfg(test)]
mod tests {
    use crate::sub_resource::test_support::*;
    use crate::ErrorCode;
    use serde_json::json;

    #[tokio::test]
    async fn terminate_by_default_allow_persists() {
        let fx = fixture();
        create_function(&fx.cp, "f").await;
        let got = exec(
            &fx.cp,
            "GetFunctionRecursionConfig",
            json!({"FunctionName": "f"}),
        )
        .await
        .unwrap();
        assert_eq!(got, json!({"RecursiveLoop": "Terminate"}));
        let put = exec(
            &fx.cp,
            "PutFunctionRecursionConfig",
            json!({"FunctionName": "f", "RecursiveLoop": "Allow"}),
        )
        .await
        .unwrap();
        assert_eq!(put, json!({"RecursiveLoop": "Allow"}));
        assert!(fx.cp.recursion_allowed(&scope(), "f"));
        let cp = reopen(&fx);
        let got = exec(
            &cp,
            "GetFunctionRecursionConfig",
            json!({"FunctionName": "f"}),
        )
        .await
        .unwrap();
        assert_eq!(got, json!({"RecursiveLoop": "Allow"}));
    }

    #[tokio::test]
    async fn invalid_values_and_missing_functions_are_refused() {
        let fx = fixture();
        create_function(&fx.cp, "f").await;
        let e = exec(
            &fx.cp,
            "PutFunctionRecursionConfig",
            json!({"FunctionName": "f", "RecursiveLoop": "InvalidValue"}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value 'InvalidValue' at 'recursiveLoop' failed to \
             satisfy constraint: Member must satisfy enum value set: [Terminate, Allow]"
        );
        let e = exec(
            &fx.cp,
            "GetFunctionRecursionConfig",
            json!({"FunctionName": "nope"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
        assert_eq!(e.message, format!("Function not found: {}", fn_arn("nope")));
    }
}
