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

/// The operations another account may call on a function a statement shares, and the action
/// each needs.
pub fn cross_account_action(operation: &str) -> Option<&'static str> {
    match operation {
        "GetFunction" => Some("lambda:GetFunction"),
        "GetFunctionConfiguration" => Some("lambda:GetFunctionConfiguration"),
        _ => None,
    }
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
}
