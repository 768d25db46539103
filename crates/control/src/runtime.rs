//! Which `Runtime` values a function may be created or updated with: AWS's current runtime ids,
//! minus the deprecated ones AWS blocks, minus those this Flint server cannot run (asked of the
//! runtime registry, behind a small trait so tests need no interpreters).

use crate::LambdaError;

/// The runtime ids AWS accepts for new functions, in the order AWS lists them in its error.
pub const AWS_RUNTIMES: &[&str] = &[
    "nodejs20.x",
    "python3.14",
    "provided.al2023",
    "python3.12",
    "python3.13",
    "nodejs24.x",
    "nodejs22.x",
    "java25",
    "python3.10",
    "python3.11",
    "java21",
    "ruby3.3",
    "ruby3.4",
    "ruby3.2",
    "python3.8",
    "python3.9",
    "java17",
    "nodejs16.x",
    "dotnet10",
    "dotnet8",
    "java11",
    "dotnet6",
    "nodejs18.x",
    "provided.al2",
    "java8.al2",
];

/// Runtimes in the API model that AWS accepts but newer than the list quoted in its error
/// (`custom` is a customer-managed runtime named by `RuntimeConfig`).
pub const AWS_RUNTIMES_NEWER: &[&str] = &[
    "ruby4.0",
    "python3.15",
    "nodejs26.x",
    "java8.al2023",
    "java11.al2023",
    "java17.al2023",
    "custom",
];

/// Runtimes AWS no longer allows creating or updating functions with.
pub const DEPRECATED_RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs4.3-edge",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    // Still in the model's enum (and in the list quoted above), but deprecated in 2024 and
    // past its create and update block dates now; the suite's recordings of nodejs16.x
    // functions predate the block.
    "nodejs16.x",
    "java8",
    "python2.7",
    "python3.6",
    "python3.7",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "provided",
];

/// Why this server cannot run a runtime AWS knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrunnable {
    /// Flint has no support for the language at all.
    Unsupported,
    /// Supported, but no interpreter for it was found on this machine.
    Unavailable,
}

/// What the control plane needs to know about the runtimes this server can run.
pub trait RuntimeCatalog: Send + Sync {
    fn check(&self, runtime: &str) -> Result<(), Unrunnable>;
    /// Runtime ids this server can run, for error messages.
    fn runnable(&self) -> Vec<String>;
}

impl RuntimeCatalog for flint_runtimes::RuntimeRegistry {
    fn check(&self, runtime: &str) -> Result<(), Unrunnable> {
        match self.list().into_iter().find(|m| m.id == runtime) {
            None => Err(Unrunnable::Unsupported),
            Some(m) if m.family == flint_runtimes::Family::Provided || m.interpreter.is_some() => {
                Ok(())
            }
            Some(_) => Err(Unrunnable::Unavailable),
        }
    }
    fn runnable(&self) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|m| m.family == flint_runtimes::Family::Provided || m.interpreter.is_some())
            .map(|m| m.id)
            .collect()
    }
}

/// Validates a `Runtime` value of CreateFunction / UpdateFunctionConfiguration.
pub fn validate(catalog: &dyn RuntimeCatalog, runtime: &str) -> Result<(), LambdaError> {
    if DEPRECATED_RUNTIMES.contains(&runtime) {
        return Err(LambdaError::invalid(format!(
            "The runtime parameter of {runtime} is no longer supported for creating or updating \
             AWS Lambda functions. We recommend you use a supported runtime while creating or \
             updating functions."
        )));
    }
    if !AWS_RUNTIMES.contains(&runtime) && !AWS_RUNTIMES_NEWER.contains(&runtime) {
        return Err(LambdaError::invalid(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum \
             value set: [{}] or be a valid ARN",
            AWS_RUNTIMES.join(", ")
        )));
    }
    match catalog.check(runtime) {
        Ok(()) => Ok(()),
        Err(why) => {
            let why = match why {
                Unrunnable::Unsupported => "is not supported by this Flint server",
                Unrunnable::Unavailable => "has no interpreter installed on this Flint server",
            };
            let mut runnable = catalog.runnable();
            runnable.sort();
            Err(LambdaError::invalid(format!(
                "The runtime parameter of {runtime} {why}. Runtimes available here: [{}].",
                runnable.join(", ")
            )))
        }
    }
}

/// A catalog for tests and embedders: exactly the listed runtimes are runnable.
#[derive(Debug, Clone, Default)]
pub struct FixedCatalog(pub Vec<String>);

impl RuntimeCatalog for FixedCatalog {
    fn check(&self, runtime: &str) -> Result<(), Unrunnable> {
        if self.0.iter().any(|r| r == runtime) {
            Ok(())
        } else {
            Err(Unrunnable::Unsupported)
        }
    }
    fn runnable(&self) -> Vec<String> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn catalog() -> FixedCatalog {
        FixedCatalog(vec!["python3.12".into(), "nodejs20.x".into()])
    }

    #[test]
    fn deprecated_runtime_gets_aws_message() {
        let e = validate(&catalog(), "python3.7").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert_eq!(
            e.message,
            "The runtime parameter of python3.7 is no longer supported for creating or updating \
             AWS Lambda functions. We recommend you use a supported runtime while creating or \
             updating functions."
        );
    }

    #[test]
    fn nodejs16_is_refused_as_deprecated_not_as_unrunnable() {
        let e = validate(&catalog(), "nodejs16.x").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert!(
            e.message.starts_with(
                "The runtime parameter of nodejs16.x is no longer supported for creating or \
                 updating AWS Lambda functions."
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_runtime_lists_the_aws_enum() {
        let e = validate(&catalog(), "PYTHON3.9").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert!(e.message.starts_with(
            "Value PYTHON3.9 at 'runtime' failed to satisfy constraint: Member must satisfy enum \
             value set: [nodejs20.x, python3.14, provided.al2023,"
        ));
        assert!(e
            .message
            .ends_with("provided.al2, java8.al2] or be a valid ARN"));
    }

    #[test]
    fn runtime_flint_cannot_run_is_rejected_clearly() {
        let e = validate(&catalog(), "java21").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert!(
            e.message
                .contains("java21 is not supported by this Flint server"),
            "{}",
            e.message
        );
        assert!(e.message.contains("nodejs20.x, python3.12"));
        assert!(validate(&catalog(), "python3.12").is_ok());
    }
}
