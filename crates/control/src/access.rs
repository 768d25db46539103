//! Who may act on a function: its resource-based policy (AddPermission's statements) evaluated
//! as AWS evaluates it for a caller. Same-account callers need no statement (Flint has no
//! identity policies: an account's own keys may do everything), except an anonymous caller,
//! which only a public statement (`Principal: "*"`) admits. A condition whose key the request
//! does not carry fails, as in IAM.

use crate::configuration::LATEST;
use crate::error::ErrorCode;
use crate::function_name;
use crate::policy::{Principal, Statement};
use crate::{ControlPlane, LambdaError, Scope};

/// An operation another account may call on a function whose policy shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossAccount {
    /// The action a statement must allow (`lambda:<Operation>`).
    pub action: &'static str,
    /// The input member naming the function: `FunctionName`, or `Resource` for the tag
    /// operations.
    pub member: &'static str,
}

/// The operations AWS lets another account call on a function through its resource-based
/// policy (the developer guide's list, "Granting function access to other accounts"; Invoke
/// goes through `ControlPlane::resolve_invoke`). Every other operation on another account's
/// function is refused, grant or not.
pub fn cross_account_action(operation: &str) -> Option<CrossAccount> {
    let function = |action| {
        Some(CrossAccount {
            action,
            member: "FunctionName",
        })
    };
    let resource = |action| {
        Some(CrossAccount {
            action,
            member: "Resource",
        })
    };
    match operation {
        "GetFunction" => function("lambda:GetFunction"),
        "GetFunctionConfiguration" => function("lambda:GetFunctionConfiguration"),
        "UpdateFunctionCode" => function("lambda:UpdateFunctionCode"),
        "DeleteFunction" => function("lambda:DeleteFunction"),
        "PublishVersion" => function("lambda:PublishVersion"),
        "ListVersionsByFunction" => function("lambda:ListVersionsByFunction"),
        "CreateAlias" => function("lambda:CreateAlias"),
        "GetAlias" => function("lambda:GetAlias"),
        "ListAliases" => function("lambda:ListAliases"),
        "UpdateAlias" => function("lambda:UpdateAlias"),
        "DeleteAlias" => function("lambda:DeleteAlias"),
        "GetPolicy" => function("lambda:GetPolicy"),
        "PutFunctionConcurrency" => function("lambda:PutFunctionConcurrency"),
        "DeleteFunctionConcurrency" => function("lambda:DeleteFunctionConcurrency"),
        "ListTags" => resource("lambda:ListTags"),
        "TagResource" => resource("lambda:TagResource"),
        "UntagResource" => resource("lambda:UntagResource"),
        _ => None,
    }
}

/// The function an operation's input names, for the cross-account check: a tag operation's
/// `Resource` only when it is a function's ARN (event source mappings and code-signing
/// configs are never shared).
pub fn named_function<'a>(cross: &CrossAccount, input: &'a serde_json::Value) -> Option<&'a str> {
    let name = input.get(cross.member)?.as_str()?;
    if cross.member == "Resource" && name.split(':').nth(5) != Some("function") {
        return None;
    }
    Some(name)
}

/// One request to act on a function, as its resource policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access<'a> {
    /// The caller's account; `None` for an anonymous caller (a function URL with `AuthType: NONE`).
    pub caller_account: Option<&'a str>,
    /// `lambda:InvokeFunction`, `lambda:InvokeFunctionUrl`, `lambda:GetFunction`, ...
    pub action: &'a str,
    /// `lambda:FunctionUrlAuthType`: the URL's auth type when the request came through one.
    pub url_auth_type: Option<&'a str>,
    /// `lambda:InvokedViaFunctionUrl`.
    pub via_function_url: bool,
}

/// The actions a statement's `Action` grants.
fn action_matches(granted: &str, asked: &str) -> bool {
    granted == "*" || granted == "lambda:*" || granted.eq_ignore_ascii_case(asked)
}

/// The account an IAM principal (`arn:aws:iam::123456789012:root`, a role or user ARN, or a bare
/// account id) belongs to.
fn principal_account(aws: &str) -> &str {
    if aws.len() == 12 && aws.bytes().all(|b| b.is_ascii_digit()) {
        return aws;
    }
    aws.split(':').nth(4).unwrap_or("")
}

fn principal_matches(p: &Principal, caller: Option<&str>) -> bool {
    match p {
        Principal::Any(s) => s == "*",
        Principal::Aws { aws } if aws == "*" => true,
        Principal::Aws { aws } => caller.is_some_and(|c| principal_account(aws) == c),
        // Services are never the direct callers Flint sees.
        Principal::Service { .. } => false,
    }
}

fn conditions_hold(s: &Statement, access: &Access<'_>) -> bool {
    let Some(c) = &s.condition else {
        return true;
    };
    if let Some(eq) = &c.string_equals {
        // Keys a direct call does not carry (service callers' SourceAccount, organisations,
        // Alexa's event source token) fail the condition.
        if eq.source_account.is_some()
            || eq.principal_org_id.is_some()
            || eq.event_source_token.is_some()
        {
            return false;
        }
        if let Some(t) = &eq.function_url_auth_type {
            if access.url_auth_type != Some(t.as_str()) {
                return false;
            }
        }
    }
    if c.arn_like.is_some() {
        return false;
    }
    if let Some(b) = &c.bool_ {
        if b.invoked_via_function_url.eq_ignore_ascii_case("true") != access.via_function_url {
            return false;
        }
    }
    true
}

/// Whether one of `statements` allows `access` (and none denies it).
pub fn allowed_by(statements: &[Statement], access: &Access<'_>) -> bool {
    let applies = |s: &&Statement| {
        action_matches(&s.action, access.action)
            && principal_matches(&s.principal, access.caller_account)
            && conditions_hold(s, access)
    };
    let mut allow = false;
    for s in statements.iter().filter(applies) {
        if s.effect.eq_ignore_ascii_case("Deny") {
            return false;
        }
        allow |= s.effect.eq_ignore_ascii_case("Allow");
    }
    allow
}

impl ControlPlane {
    /// When `function_name` is an ARN of another account (in the caller's region): that
    /// account's scope if its policy allows the caller `action`, else AWS's
    /// `AccessDeniedException`. `None` for the caller's own functions.
    pub fn cross_account_owner(
        &self,
        caller: &Scope,
        function_name: Option<&str>,
        qualifier: Option<&str>,
        action: &str,
    ) -> Result<Option<Scope>, LambdaError> {
        let Some(name) = function_name else {
            return Ok(None);
        };
        let Ok((owner, fref)) = function_name::locate(caller, name) else {
            return Ok(None);
        };
        if owner.account == caller.account || owner.region != caller.region {
            return Ok(None);
        }
        let qualifier = fref.qualifier.as_deref().or(qualifier);
        let access = Access {
            caller_account: Some(&caller.account),
            action,
            url_auth_type: None,
            via_function_url: false,
        };
        let shared = self.index.get(&owner, &fref.name).is_some_and(|f| {
            let key = match qualifier {
                None | Some(LATEST) => "",
                Some(q) => q,
            };
            f.doc
                .settings
                .policies
                .get(key)
                .is_some_and(|p| allowed_by(&p.statements, &access))
        });
        if !shared {
            return Err(LambdaError::new(
                ErrorCode::AccessDeniedException,
                format!(
                    "User: arn:aws:iam::{}:root is not authorized to perform: {action} on resource: {} because no resource-based policy allows the {action} action",
                    caller.account,
                    fref.arn(&owner)
                ),
            ));
        }
        Ok(Some(owner))
    }

    /// Whether `access` to the function `name` in `scope`, through `qualifier` (a version or
    /// alias; `None` or `$LATEST` for the function itself), is allowed. A missing function is
    /// allowed here: the caller's own not-found error says the rest.
    pub fn allows(
        &self,
        scope: &Scope,
        name: &str,
        qualifier: Option<&str>,
        access: &Access<'_>,
    ) -> bool {
        if access.caller_account == Some(scope.account.as_str()) {
            return true;
        }
        let Some(f) = self.index.get(scope, name) else {
            return access.caller_account.is_some();
        };
        let key = match qualifier {
            None | Some(LATEST) => "",
            Some(q) => q,
        };
        f.doc
            .settings
            .policies
            .get(key)
            .is_some_and(|p| allowed_by(&p.statements, access))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{BoolCondition, Condition, StringEquals};

    fn statement(principal: Principal, action: &str, condition: Option<Condition>) -> Statement {
        Statement {
            sid: "s".into(),
            effect: "Allow".into(),
            principal,
            action: action.into(),
            resource: "arn:aws:lambda:us-east-1:111111111111:function:f".into(),
            condition,
        }
    }

    fn url_access(action: &str) -> Access<'_> {
        Access {
            caller_account: None,
            action,
            url_auth_type: Some("NONE"),
            via_function_url: true,
        }
    }

    #[test]
    fn a_public_url_grant_admits_anonymous_url_callers_only_with_its_auth_type() {
        let s = [statement(
            Principal::Any("*".into()),
            "lambda:InvokeFunctionUrl",
            Some(Condition {
                string_equals: Some(StringEquals {
                    function_url_auth_type: Some("NONE".into()),
                    ..StringEquals::default()
                }),
                ..Condition::default()
            }),
        )];
        assert!(allowed_by(&s, &url_access("lambda:InvokeFunctionUrl")));
        assert!(!allowed_by(&s, &url_access("lambda:InvokeFunction")));
        let iam = Access {
            url_auth_type: Some("AWS_IAM"),
            ..url_access("lambda:InvokeFunctionUrl")
        };
        assert!(!allowed_by(&s, &iam));
    }

    #[test]
    fn invoked_via_function_url_holds_only_for_url_requests() {
        let s = [statement(
            Principal::Any("*".into()),
            "lambda:InvokeFunction",
            Some(Condition {
                bool_: Some(BoolCondition {
                    invoked_via_function_url: "true".into(),
                }),
                ..Condition::default()
            }),
        )];
        assert!(allowed_by(&s, &url_access("lambda:InvokeFunction")));
        let direct = Access {
            caller_account: Some("222222222222"),
            action: "lambda:InvokeFunction",
            url_auth_type: None,
            via_function_url: false,
        };
        assert!(!allowed_by(&s, &direct));
    }

    #[test]
    fn an_account_principal_admits_that_account_alone() {
        let s = [statement(
            Principal::Aws {
                aws: "arn:aws:iam::222222222222:root".into(),
            },
            "lambda:InvokeFunction",
            None,
        )];
        let access = |account| Access {
            caller_account: Some(account),
            action: "lambda:InvokeFunction",
            url_auth_type: None,
            via_function_url: false,
        };
        assert!(allowed_by(&s, &access("222222222222")));
        assert!(!allowed_by(&s, &access("333333333333")));
        assert!(!allowed_by(
            &s,
            &Access {
                action: "lambda:GetFunction",
                ..access("222222222222")
            }
        ));
    }

    #[test]
    fn a_source_account_condition_never_holds_for_a_direct_caller() {
        let s = [statement(
            Principal::Any("*".into()),
            "lambda:InvokeFunction",
            Some(Condition {
                string_equals: Some(StringEquals {
                    source_account: Some("222222222222".into()),
                    ..StringEquals::default()
                }),
                ..Condition::default()
            }),
        )];
        let access = Access {
            caller_account: Some("222222222222"),
            action: "lambda:InvokeFunction",
            url_auth_type: None,
            via_function_url: false,
        };
        assert!(!allowed_by(&s, &access));
    }

    mod across_accounts {
        //! The operations another account may call, through `ControlPlane::execute` on a real
        //! store: refused without a grant, run in the owner's account with one.

        use serde_json::{json, Value};

        use crate::sub_resource::test_support::*;
        use crate::{ErrorCode, LambdaError, Scope};

        fn account(id: &str) -> Scope {
            Scope {
                account: id.into(),
                region: "us-east-1".into(),
            }
        }

        async fn as_other(
            cp: &crate::ControlPlane,
            id: &str,
            op: &str,
            input: Value,
        ) -> Result<Value, LambdaError> {
            cp.execute(&account(id), op, input).await
        }

        fn denied(r: Result<Value, LambdaError>, caller: &str, action: &str, resource: &str) {
            let e = r.unwrap_err();
            assert_eq!(e.code, ErrorCode::AccessDeniedException, "{e:?}");
            assert_eq!(
                e.message,
                format!(
                    "User: arn:aws:iam::{caller}:root is not authorized to perform: {action} on \
                     resource: {resource} because no resource-based policy allows the {action} \
                     action"
                )
            );
        }

        /// Every operation of AWS's cross-account list but Invoke, with an input naming `f` by ARN.
        fn shared_operations(f: &str) -> Vec<(&'static str, Value)> {
            vec![
                ("GetFunction", json!({"FunctionName": f})),
                ("GetFunctionConfiguration", json!({"FunctionName": f})),
                ("ListVersionsByFunction", json!({"FunctionName": f})),
                ("GetPolicy", json!({"FunctionName": f})),
                ("TagResource", json!({"Resource": f, "Tags": {"team": "x"}})),
                ("ListTags", json!({"Resource": f})),
                ("UntagResource", json!({"Resource": f, "TagKeys": ["team"]})),
                (
                    "PutFunctionConcurrency",
                    json!({"FunctionName": f, "ReservedConcurrentExecutions": 1}),
                ),
                ("DeleteFunctionConcurrency", json!({"FunctionName": f})),
                (
                    "CreateAlias",
                    json!({"FunctionName": f, "Name": "live", "FunctionVersion": "$LATEST"}),
                ),
                ("GetAlias", json!({"FunctionName": f, "Name": "live"})),
                (
                    "UpdateAlias",
                    json!({"FunctionName": f, "Name": "live", "Description": "d"}),
                ),
                ("ListAliases", json!({"FunctionName": f})),
                ("DeleteAlias", json!({"FunctionName": f, "Name": "live"})),
                ("PublishVersion", json!({"FunctionName": f})),
                ("DeleteFunction", json!({"FunctionName": f})),
            ]
        }

        #[tokio::test]
        async fn without_a_grant_every_shared_operation_is_access_denied() {
            let fx = fixture();
            create_function(&fx.cp, "f").await;
            // A grant to a third account opens nothing to this one.
            exec(
                &fx.cp,
                "AddPermission",
                json!({"FunctionName": "f", "StatementId": "third", "Action": "lambda:*",
                       "Principal": "333333333333"}),
            )
            .await
            .unwrap();
            let f = fn_arn("f");
            for (op, input) in shared_operations(&f) {
                let action = format!("lambda:{op}");
                let r = as_other(&fx.cp, "222222222222", op, input).await;
                denied(r, "222222222222", &action, &f);
            }
            // Nothing changed in the owner's account.
            let tags = exec(&fx.cp, "ListTags", json!({"Resource": f}))
                .await
                .unwrap();
            assert_eq!(tags["Tags"], json!({}));
            exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"}))
                .await
                .unwrap();
        }

        #[tokio::test]
        async fn a_grant_of_lambda_star_opens_the_shared_operations_in_the_owners_account() {
            let fx = fixture();
            create_function(&fx.cp, "f").await;
            exec(
                &fx.cp,
                "AddPermission",
                json!({"FunctionName": "f", "StatementId": "other", "Action": "lambda:*",
                       "Principal": "arn:aws:iam::222222222222:root"}),
            )
            .await
            .unwrap();
            let f = fn_arn("f");
            for (op, input) in shared_operations(&f) {
                if op == "DeleteFunction" {
                    // The owner sees what the other account did before it deletes the function.
                    let versions = exec(
                        &fx.cp,
                        "ListVersionsByFunction",
                        json!({"FunctionName": "f"}),
                    )
                    .await
                    .unwrap();
                    assert_eq!(versions["Versions"].as_array().unwrap().len(), 2);
                }
                let out = as_other(&fx.cp, "222222222222", op, input)
                    .await
                    .unwrap_or_else(|e| panic!("{op}: {e:?}"));
                match op {
                    "GetFunctionConfiguration" => assert_eq!(out["FunctionArn"], json!(f)),
                    "ListTags" => assert_eq!(out["Tags"], json!({"team": "x"})),
                    "UpdateAlias" => assert_eq!(out["Description"], "d"),
                    "PublishVersion" => settle(&fx.cp, "f", Some("1")).await,
                    _ => {}
                }
            }
            let gone = exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"})).await;
            assert_eq!(gone.unwrap_err().code, ErrorCode::ResourceNotFoundException);
        }

        #[tokio::test]
        async fn a_grant_opens_only_its_action_and_never_the_operations_aws_keeps_to_the_owner() {
            let fx = fixture();
            create_function(&fx.cp, "f").await;
            exec(
                &fx.cp,
                "AddPermission",
                json!({"FunctionName": "f", "StatementId": "get", "Action": "lambda:GetFunction",
                       "Principal": "222222222222"}),
            )
            .await
            .unwrap();
            let f = fn_arn("f");
            as_other(
                &fx.cp,
                "222222222222",
                "GetFunction",
                json!({"FunctionName": f}),
            )
            .await
            .unwrap();
            let r = as_other(
                &fx.cp,
                "222222222222",
                "DeleteFunction",
                json!({"FunctionName": f}),
            )
            .await;
            denied(r, "222222222222", "lambda:DeleteFunction", &f);

            exec(
                &fx.cp,
                "AddPermission",
                json!({"FunctionName": "f", "StatementId": "all", "Action": "lambda:*",
                       "Principal": "222222222222"}),
            )
            .await
            .unwrap();
            // Not on AWS's list: the other account's ARN is refused as any foreign name is.
            for (op, input) in [
                (
                    "UpdateFunctionConfiguration",
                    json!({"FunctionName": f, "Description": "mine now"}),
                ),
                (
                    "AddPermission",
                    json!({"FunctionName": f, "StatementId": "x", "Action": "lambda:*",
                           "Principal": "444444444444"}),
                ),
                ("GetFunctionConcurrency", json!({"FunctionName": f})),
            ] {
                let e = as_other(&fx.cp, "222222222222", op, input)
                    .await
                    .unwrap_err();
                assert_eq!(e.code, ErrorCode::AccessDeniedException, "{op}");
            }
            let conf = exec(
                &fx.cp,
                "GetFunctionConfiguration",
                json!({"FunctionName": "f"}),
            )
            .await
            .unwrap();
            assert_ne!(conf["Description"], "mine now");
        }

        #[tokio::test]
        async fn a_grant_on_an_alias_shares_that_qualifier_only() {
            let fx = fixture();
            create_function(&fx.cp, "f").await;
            let v = publish(&fx.cp, "f").await;
            create_alias(&fx.cp, "f", "live", &v).await;
            exec(
                &fx.cp,
                "AddPermission",
                json!({"FunctionName": "f", "Qualifier": "live", "StatementId": "s",
                       "Action": "lambda:GetFunction", "Principal": "222222222222"}),
            )
            .await
            .unwrap();
            let f = fn_arn("f");
            let live = format!("{f}:live");
            let got = as_other(
                &fx.cp,
                "222222222222",
                "GetFunction",
                json!({"FunctionName": live}),
            )
            .await
            .unwrap();
            assert_eq!(got["Configuration"]["Version"], json!(v));
            let r = as_other(
                &fx.cp,
                "222222222222",
                "GetFunction",
                json!({"FunctionName": f}),
            )
            .await;
            denied(r, "222222222222", "lambda:GetFunction", &f);
        }
    }
}
