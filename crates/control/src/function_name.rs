//! The `FunctionName` parameter as Lambda reads it: a bare name, a partial ARN
//! (`ACCOUNT:function:NAME`), or a full ARN, each optionally ending in `:QUALIFIER`; reconciled
//! with a separate `Qualifier` parameter and checked against the caller's account and region.

use crate::error::ErrorCode;
use crate::{arn, LambdaError, Scope};

/// The longest function name Lambda accepts (an ARN may be longer as a whole).
pub const MAX_NAME_LEN: usize = 64;

/// The model's pattern for `NamespacedFunctionName`, quoted in validation messages.
const NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_]+))?";

/// A function addressed by a request, reduced to what the caller's scope needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    /// From the name's `:QUALIFIER` suffix or the `Qualifier` parameter (they must agree).
    pub qualifier: Option<String>,
}

impl FunctionRef {
    /// The ARN the caller addressed (qualified when they qualified), as Lambda quotes it in errors.
    pub fn arn(&self, scope: &Scope) -> String {
        arn::addressed_function_arn(scope, &self.name, self.qualifier.as_deref())
    }
    pub fn unqualified_arn(&self, scope: &Scope) -> String {
        arn::function_arn(scope, &self.name)
    }
}

/// The parts of a `FunctionName` value, before any scope checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Parts<'a> {
    region: Option<&'a str>,
    account: Option<&'a str>,
    name: &'a str,
    qualifier: Option<&'a str>,
}

/// Resolves `FunctionName` (+ optional `Qualifier` parameter) for an operation on an existing
/// function, in the caller's scope.
pub fn resolve(
    scope: &Scope,
    function_name: &str,
    qualifier_param: Option<&str>,
) -> Result<FunctionRef, LambdaError> {
    let parts = split(function_name)?;
    check_scope(scope, &parts)?;
    let qualifier = match (parts.qualifier, qualifier_param) {
        (Some(derived), Some(given)) if derived != given => return Err(LambdaError::invalid(
            "The derived qualifier from the function name does not match the specified qualifier.",
        )),
        (Some(q), _) | (None, Some(q)) => Some(q.to_string()),
        (None, None) => None,
    };
    Ok(FunctionRef {
        name: parts.name.to_string(),
        qualifier,
    })
}

/// Reads `FunctionName` as event source mappings take it: the function may be named by an ARN of
/// another (account, region), which is returned with it (the caller's scope otherwise); no access
/// check is made here.
pub fn locate(caller: &Scope, function_name: &str) -> Result<(Scope, FunctionRef), LambdaError> {
    let parts = split(function_name)?;
    let scope = Scope {
        account: parts.account.unwrap_or(&caller.account).to_string(),
        region: parts.region.unwrap_or(&caller.region).to_string(),
    };
    let fref = FunctionRef {
        name: parts.name.to_string(),
        qualifier: parts.qualifier.map(str::to_string),
    };
    Ok((scope, fref))
}

/// Resolves the `FunctionName` of CreateFunction: a name or ARN without a qualifier, whose name
/// part is at most 64 characters.
pub fn resolve_for_create(scope: &Scope, function_name: &str) -> Result<String, LambdaError> {
    let parts = split(function_name)?;
    check_scope(scope, &parts)?;
    if parts.name.len() > MAX_NAME_LEN {
        return Err(LambdaError::invalid(format!(
            "1 validation error detected: Value '{}' at 'functionName' failed to satisfy constraint: \
             Member must have length less than or equal to {MAX_NAME_LEN}",
            parts.name
        )));
    }
    if parts.qualifier.is_some() || parts.name.contains('.') {
        return Err(pattern_error(function_name));
    }
    Ok(parts.name.to_string())
}

fn check_scope(scope: &Scope, parts: &Parts<'_>) -> Result<(), LambdaError> {
    if let Some(region) = parts.region {
        if region != scope.region {
            return Err(LambdaError::not_found(format!(
                "Functions from '{region}' are not reachable in this region ('{}')",
                scope.region
            )));
        }
    }
    if let Some(account) = parts.account {
        if account != scope.account {
            // AWS answers a cross-account name without a resource policy with a bare 403.
            return Err(LambdaError::new(ErrorCode::AccessDeniedException, "").untyped());
        }
    }
    Ok(())
}

fn split(value: &str) -> Result<Parts<'_>, LambdaError> {
    let tokens: Vec<&str> = value.split(':').collect();
    let mut i = 0;
    if tokens.len() >= 3 && tokens[0] == "arn" && tokens[2] == "lambda" {
        i = 3;
    }
    let mut parts = Parts::default();
    // Each optional prefix is taken only if a name still follows it, as the model's regex does.
    if tokens.len() - i >= 2 && is_region(tokens[i]) {
        parts.region = Some(tokens[i]);
        i += 1;
    }
    if tokens.len() - i >= 2 && is_account(tokens[i]) {
        parts.account = Some(tokens[i]);
        i += 1;
    }
    if tokens.len() - i >= 2 && tokens[i] == "function" {
        i += 1;
    }
    let Some(name) = tokens.get(i) else {
        return Err(pattern_error(value));
    };
    parts.name = name;
    parts.qualifier = tokens.get(i + 1).copied();
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let valid_qualifier = parts.qualifier.is_none_or(|q| {
        !q.is_empty()
            && q.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$' | '.'))
    });
    if tokens.len() > i + 2 || !valid_name || !valid_qualifier || (i == 3 && parts.region.is_none())
    {
        return Err(pattern_error(value));
    }
    Ok(parts)
}

fn pattern_error(value: &str) -> LambdaError {
    LambdaError::validation(format!(
        "1 validation error detected: Value '{value}' at 'functionName' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}"
    ))
}

/// `(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}`, e.g. `us-east-1`, `us-gov-west-1`.
fn is_region(s: &str) -> bool {
    let mut segs: Vec<&str> = s.split('-').collect();
    if segs.first() == Some(&"eusc") {
        segs.remove(0);
    }
    let lower = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_lowercase());
    let (country, rest) = match segs.split_first() {
        Some((c, rest)) if c.len() == 2 && lower(c) => (c, rest),
        _ => return false,
    };
    let _ = country;
    let rest = match rest.first() {
        Some(&"gov") => &rest[1..],
        Some(x) if x.starts_with("iso") && x.len() <= 4 && lower(x) && rest.len() == 3 => {
            &rest[1..]
        }
        _ => rest,
    };
    matches!(rest, [area, digit] if lower(area) && digit.len() == 1 && digit.bytes().all(|b| b.is_ascii_digit()))
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        }
    }

    fn ok(name: &str, q: Option<&str>) -> FunctionRef {
        resolve(&scope(), name, q).unwrap()
    }

    #[test]
    fn bare_partial_and_full_names_resolve_to_the_same_function() {
        for form in [
            "f1",
            "000000000000:function:f1",
            "function:f1",
            "us-east-1:000000000000:function:f1",
            "arn:aws:lambda:us-east-1:000000000000:function:f1",
        ] {
            assert_eq!(
                ok(form, None),
                FunctionRef {
                    name: "f1".into(),
                    qualifier: None
                },
                "{form}"
            );
        }
    }

    #[test]
    fn qualifier_comes_from_the_name_or_the_parameter() {
        assert_eq!(ok("f1:prod", None).qualifier.as_deref(), Some("prod"));
        assert_eq!(ok("f1", Some("3")).qualifier.as_deref(), Some("3"));
        assert_eq!(
            ok(
                "arn:aws:lambda:us-east-1:000000000000:function:f1:$LATEST",
                Some("$LATEST")
            )
            .qualifier
            .as_deref(),
            Some("$LATEST")
        );
        assert_eq!(
            ok("000000000000:function:f1:7", None).qualifier.as_deref(),
            Some("7")
        );
    }

    #[test]
    fn disagreeing_qualifiers_are_rejected_as_aws_does() {
        let e = resolve(
            &scope(),
            "arn:aws:lambda:us-east-1:000000000000:function:f:1",
            Some("$LATEST"),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert_eq!(
            e.message,
            "The derived qualifier from the function name does not match the specified qualifier."
        );
    }

    #[test]
    fn other_region_is_not_reachable() {
        let e = resolve(
            &scope(),
            "arn:aws:lambda:ap-southeast-1:000000000000:function:f",
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
        assert_eq!(
            e.message,
            "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')"
        );
    }

    #[test]
    fn other_account_is_access_denied() {
        let e = resolve(
            &scope(),
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDeniedException);
        let e = resolve(&scope(), "123456789012:function:f", None).unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDeniedException);
    }

    #[test]
    fn arn_without_name_reads_function_as_the_name() {
        // As on AWS: `...:function` alone matches the regex with `function` as the name.
        let r = ok("arn:aws:lambda:us-east-1:000000000000:function", None);
        assert_eq!(r.name, "function");
        assert_eq!(r.qualifier, None);
    }

    #[test]
    fn malformed_names_fail_the_pattern() {
        for bad in [
            "arn:aws:lambda:us-east-1:000000000000:function:f:1:2",
            "function:f:$LATEST:extra",
            "f!",
            "arn:aws:lambda::000000000000:function:f",
            "",
        ] {
            let e = resolve(&scope(), bad, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationException, "{bad}");
        }
    }

    #[test]
    fn create_rejects_long_names_and_qualifiers() {
        assert_eq!(
            resolve_for_create(
                &scope(),
                "arn:aws:lambda:us-east-1:000000000000:function:ok"
            )
            .unwrap(),
            "ok"
        );
        let long = "a".repeat(65);
        let e = resolve_for_create(&scope(), &long).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert!(e
            .message
            .ends_with("Member must have length less than or equal to 64"));
        assert!(resolve_for_create(&scope(), "f:1").is_err());
        let e = resolve_for_create(
            &scope(),
            "arn:aws:lambda:ap-southeast-1:000000000000:function:f",
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    }

    #[test]
    fn regions_are_recognised_like_the_model_pattern() {
        for r in [
            "us-east-1",
            "ap-southeast-1",
            "us-gov-west-1",
            "us-isob-east-1",
            "eusc-de-east-1",
        ] {
            assert!(is_region(r), "{r}");
        }
        for r in ["invalid-region", "us-east", "useast-1", "us-east-12", "f1"] {
            assert!(!is_region(r), "{r}");
        }
    }

    #[test]
    fn locate_keeps_the_scope_an_arn_names() {
        let (s, r) = locate(&scope(), "111111111111:function:g:7").unwrap();
        assert_eq!(
            r.arn(&s),
            "arn:aws:lambda:us-east-1:111111111111:function:g:7"
        );
        let (s, r) = locate(
            &scope(),
            "arn:aws:lambda:eu-west-1:222222222222:function:h:al",
        )
        .unwrap();
        assert_eq!((s.region.as_str(), r.name.as_str()), ("eu-west-1", "h"));
        assert_eq!(
            r.unqualified_arn(&s),
            "arn:aws:lambda:eu-west-1:222222222222:function:h"
        );
        let (s, r) = locate(&scope(), "f:$LATEST").unwrap();
        assert_eq!(s, scope());
        assert_eq!(r.qualifier.as_deref(), Some("$LATEST"));
    }

    #[test]
    fn not_found_arn_quotes_the_qualifier() {
        let r = ok("f1:$latest", None);
        assert_eq!(
            r.arn(&scope()),
            "arn:aws:lambda:us-east-1:000000000000:function:f1:$latest"
        );
        assert_eq!(
            r.unqualified_arn(&scope()),
            "arn:aws:lambda:us-east-1:000000000000:function:f1"
        );
    }
}
