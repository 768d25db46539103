//! Runtime management: Get/PutRuntimeManagementConfig on `$LATEST` or a published version —
//! when the function picks up new runtime builds (`Auto`, `FunctionUpdate`, or `Manual` pinned
//! to a `RuntimeVersionArn`).

use serde::{Deserialize, Serialize};

use crate::configuration::LATEST;
use crate::function_name::{self, FunctionRef};
use crate::state::Function;
use crate::sub_resource::Qualifier;
use crate::{arn, ControlPlane, LambdaError, Scope};

/// One version's runtime update mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeManagement {
    pub update_runtime_on: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetInput {
    pub function_name: String,
    pub qualifier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutInput {
    pub function_name: String,
    pub qualifier: Option<String>,
    pub update_runtime_on: String,
    pub runtime_version_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub update_runtime_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_version_arn: Option<String>,
    pub function_arn: String,
}

/// The version a request designates (`$LATEST` when unqualified); aliases are refused, as on AWS.
fn target(scope: &Scope, fref: &FunctionRef) -> Result<String, LambdaError> {
    match fref.qualifier.as_deref().map(Qualifier::parse) {
        None | Some(Qualifier::Latest) => Ok(LATEST.into()),
        Some(Qualifier::Version(n)) => Ok(n.to_string()),
        Some(Qualifier::Alias(_)) => Err(LambdaError::invalid(format!(
            "The provided function name {} is invalid. Aliases are not allowed.",
            fref.arn(scope)
        ))),
        Some(Qualifier::Invalid(_)) => Err(LambdaError::function_not_found(&fref.arn(scope))),
    }
}

fn check_exists(
    scope: &Scope,
    fref: &FunctionRef,
    f: &Function,
    key: &str,
) -> Result<(), LambdaError> {
    if f.version(key).is_some() {
        Ok(())
    } else {
        Err(LambdaError::function_not_found(&fref.arn(scope)))
    }
}

fn render(scope: &Scope, fref: &FunctionRef, c: Option<&RuntimeManagement>) -> Output {
    let function_arn = arn::addressed_function_arn(scope, &fref.name, fref.qualifier.as_deref());
    match c {
        Some(c) => Output {
            update_runtime_on: c.update_runtime_on.clone(),
            runtime_version_arn: c.runtime_version_arn.clone(),
            function_arn,
        },
        None => Output {
            update_runtime_on: "Auto".into(),
            runtime_version_arn: None,
            function_arn,
        },
    }
}

pub async fn get(cp: &ControlPlane, scope: &Scope, input: GetInput) -> Result<Output, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let key = target(scope, &fref)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.arn(scope)))?;
    check_exists(scope, &fref, &f, &key)?;
    Ok(render(
        scope,
        &fref,
        f.doc.settings.runtime_management.get(&key),
    ))
}

pub async fn put(cp: &ControlPlane, scope: &Scope, input: PutInput) -> Result<Output, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let key = target(scope, &fref)?;
    let mode = input.update_runtime_on;
    if !matches!(mode.as_str(), "Auto" | "FunctionUpdate" | "Manual") {
        return Err(LambdaError::validation(format!(
            "1 validation error detected: Value '{mode}' at 'updateRuntimeOn' failed to satisfy \
             constraint: Member must satisfy enum value set: [Auto, Manual, FunctionUpdate]"
        )));
    }
    let runtime_version_arn = match (mode.as_str(), input.runtime_version_arn) {
        ("Manual", Some(a)) => Some(a),
        ("Manual", None) => {
            return Err(LambdaError::invalid(
                "RuntimeVersionArn must be specified when UpdateRuntimeOn is Manual.",
            ))
        }
        (_, Some(_)) => {
            return Err(LambdaError::invalid(
                "RuntimeVersionArn can only be specified when UpdateRuntimeOn is Manual.",
            ))
        }
        (_, None) => None,
    };
    let config = RuntimeManagement {
        update_runtime_on: mode,
        runtime_version_arn,
    };
    let not_found = || LambdaError::function_not_found(&fref.arn(scope));
    cp.index
        .modify(scope, &fref.name, not_found, |current, draft| {
            check_exists(scope, &fref, current, &key)?;
            draft
                .doc
                .settings
                .runtime_management
                .insert(key.clone(), config.clone());
            Ok(())
        })
        .await?;
    Ok(render(scope, &fref, Some(&config)))
}

#[cfg(test)]
mod tests {
    use crate::sub_resource::test_support::*;
    use serde_json::json;

    #[tokio::test]
    async fn default_is_auto_and_manual_pins_a_runtime_version() {
        let fx = fixture();
        create_function(&fx.cp, "f").await;
        let got = exec(
            &fx.cp,
            "GetRuntimeManagementConfig",
            json!({"FunctionName": "f"}),
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            json!({"UpdateRuntimeOn": "Auto", "FunctionArn": fn_arn("f")})
        );
        let arn = "arn:aws:lambda:us-east-1::runtime:abc";
        let put = exec(
            &fx.cp,
            "PutRuntimeManagementConfig",
            json!({"FunctionName": "f", "UpdateRuntimeOn": "Manual", "RuntimeVersionArn": arn}),
        )
        .await
        .unwrap();
        assert_eq!(put["RuntimeVersionArn"], arn);
        let cp = reopen(&fx);
        let got = exec(
            &cp,
            "GetRuntimeManagementConfig",
            json!({"FunctionName": "f"}),
        )
        .await
        .unwrap();
        assert_eq!(got["UpdateRuntimeOn"], "Manual");
        assert_eq!(got["RuntimeVersionArn"], arn);
    }

    #[tokio::test]
    async fn manual_needs_an_arn_aliases_and_missing_versions_are_refused() {
        let fx = fixture();
        create_function(&fx.cp, "f").await;
        let e = exec(
            &fx.cp,
            "PutRuntimeManagementConfig",
            json!({"FunctionName": "f", "UpdateRuntimeOn": "Manual"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameterValueException);
        let e = exec(
            &fx.cp,
            "PutRuntimeManagementConfig",
            json!({"FunctionName": "f", "Qualifier": "prod", "UpdateRuntimeOn": "Auto"}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "The provided function name {}:prod is invalid. Aliases are not allowed.",
                fn_arn("f")
            )
        );
        let e = exec(
            &fx.cp,
            "GetRuntimeManagementConfig",
            json!({"FunctionName": "f", "Qualifier": "7"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.message, format!("Function not found: {}:7", fn_arn("f")));
        let e = exec(
            &fx.cp,
            "GetRuntimeManagementConfig",
            json!({"FunctionName": "nope"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::ResourceNotFoundException);
    }
}
