//! Lambda's errors as data: every AWS error code Flint returns, with its HTTP status. The api crate
//! renders a `LambdaError` as AWS does (`x-amzn-ErrorType` header, JSON `{"Type", "message"}`).

/// AWS Lambda's error codes (the model's exception shapes), named as AWS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationException,
    InvalidParameterValueException,
    InvalidRequestContentException,
    ResourceNotFoundException,
    ResourceConflictException,
    ResourceInUseException,
    PreconditionFailedException,
    PolicyLengthExceededException,
    RequestTooLargeException,
    RequestEntityTooLargeException,
    TooManyRequestsException,
    CodeStorageExceededException,
    CodeSigningConfigNotFoundException,
    ProvisionedConcurrencyConfigNotFoundException,
    InvalidRuntimeException,
    ServiceException,
    UnsupportedMediaTypeException,
    AccessDeniedException,
    UnrecognizedClientException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnknownOperationException,
    RecursiveInvocationException,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            ValidationException
            | InvalidParameterValueException
            | InvalidRequestContentException
            | CodeStorageExceededException
            // An operation this server does not offer: the route exists, the request is fine.
            | UnknownOperationException
            | RecursiveInvocationException => 400,
            AccessDeniedException
            | UnrecognizedClientException
            | InvalidSignatureException
            | MissingAuthenticationTokenException => 403,
            ResourceNotFoundException
            | CodeSigningConfigNotFoundException
            | ProvisionedConcurrencyConfigNotFoundException => 404,
            ResourceConflictException | ResourceInUseException => 409,
            PreconditionFailedException => 412,
            RequestTooLargeException | RequestEntityTooLargeException => 413,
            UnsupportedMediaTypeException => 415,
            TooManyRequestsException => 429,
            PolicyLengthExceededException => 400,
            InvalidRuntimeException => 502,
            ServiceException => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            ValidationException => "ValidationException",
            RecursiveInvocationException => "RecursiveInvocationException",
            InvalidParameterValueException => "InvalidParameterValueException",
            InvalidRequestContentException => "InvalidRequestContentException",
            ResourceNotFoundException => "ResourceNotFoundException",
            ResourceConflictException => "ResourceConflictException",
            ResourceInUseException => "ResourceInUseException",
            PreconditionFailedException => "PreconditionFailedException",
            PolicyLengthExceededException => "PolicyLengthExceededException",
            RequestTooLargeException => "RequestTooLargeException",
            RequestEntityTooLargeException => "RequestEntityTooLargeException",
            TooManyRequestsException => "TooManyRequestsException",
            CodeStorageExceededException => "CodeStorageExceededException",
            CodeSigningConfigNotFoundException => "CodeSigningConfigNotFoundException",
            ProvisionedConcurrencyConfigNotFoundException => {
                "ProvisionedConcurrencyConfigNotFoundException"
            }
            InvalidRuntimeException => "InvalidRuntimeException",
            ServiceException => "ServiceException",
            UnsupportedMediaTypeException => "UnsupportedMediaTypeException",
            AccessDeniedException => "AccessDeniedException",
            UnrecognizedClientException => "UnrecognizedClientException",
            InvalidSignatureException => "InvalidSignatureException",
            MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            UnknownOperationException => "UnknownOperationException",
        }
    }
}

/// An error as AWS Lambda reports it: a code and AWS's exact message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct LambdaError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra top-level body fields some errors carry (e.g. `Reason` on TooManyRequestsException).
    pub extra: Vec<(&'static str, String)>,
    /// Whether the body carries `"Type": "User"|"Server"`. AWS sends it with most errors but not
    /// all: the concurrency-limit and routing-config `InvalidParameterValueException`s and the
    /// code-signing-config 404s come without it (recorded in AWS's answers).
    pub typed: bool,
}

impl LambdaError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            extra: Vec::new(),
            typed: true,
        }
    }
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
        self
    }
    /// The same error, answered without the `Type` field (as AWS answers it).
    pub fn untyped(mut self) -> Self {
        self.typed = false;
        self
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceNotFoundException, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceConflictException, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValueException, message)
    }
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceException, message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationException, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PreconditionFailedException, message)
    }

    /// 404 for a function (or one of its versions/aliases) that does not exist; `arn` is the ARN
    /// the caller addressed, qualified if they qualified.
    pub fn function_not_found(arn: &str) -> Self {
        Self::not_found(format!("Function not found: {arn}"))
    }
    /// 409 for creating a function whose name is taken.
    pub fn function_already_exists(name: &str) -> Self {
        Self::conflict(format!("Function already exist: {name}"))
    }
    /// 412 for a stale `RevisionId` on a function or alias.
    pub fn stale_function_revision() -> Self {
        Self::precondition(
            "The Revision Id provided does not match the latest Revision Id. \
             Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )
    }
    /// 409 while a previous update of the function has not finished.
    pub fn update_in_progress(function_arn: &str) -> Self {
        Self::conflict(format!(
            "The operation cannot be performed at this time. \
             An update is in progress for resource: {function_arn}"
        ))
    }
    /// 409 while the function (version) is not in a state that allows the operation.
    pub fn function_in_state(state: &str) -> Self {
        Self::conflict(format!(
            "The operation cannot be performed at this time. \
             The function is currently in the following state: {state}"
        ))
    }

    /// 404 AWS answers for a resource it names by neither ARN nor id (a layer version read by
    /// Get*, an event source mapping by UUID, a URL config, a policy target).
    pub fn resource_not_found() -> Self {
        Self::not_found("The resource you requested does not exist.")
    }
    /// 400 for a version or alias ARN given to an operation on the function itself.
    pub fn unqualified_only() -> Self {
        Self::invalid(
            "This operation is permitted on Lambda functions only. Aliases and versions do not \
             support this operation. Please specify either a function name or an unqualified \
             function ARN.",
        )
    }
    /// 400 for a `Marker` this server did not hand out.
    pub fn invalid_marker(marker: &str) -> Self {
        Self::invalid(format!("Invalid marker: {marker}"))
    }
    /// 400 for code or layer content given by S3 location when no S3 connection is plugged in
    /// (`ControlPlane::set_object_source`): no bucket exists then.
    pub fn s3_no_such_bucket() -> Self {
        Self::invalid(
            "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The \
             specified bucket does not exist",
        )
    }
    /// 400 for a zip that cannot be read (or escapes its directory).
    pub fn unzip_failed() -> Self {
        Self::invalid(
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
        )
    }
    /// 404 for a layer version a layer operation addresses by name and number.
    pub fn layer_version_not_found(layer_version_arn: &str) -> Self {
        Self::not_found(format!("Layer version {layer_version_arn} does not exist."))
    }
    /// 400 for a layer version a function configuration references.
    pub fn layer_version_does_not_exist(layer_version_arn: &str) -> Self {
        Self::invalid(format!("Layer version {layer_version_arn} does not exist."))
    }
    /// 400 for a `VersionNumber` (or a layer version ARN's number) below 1.
    pub fn layer_version_below_one() -> Self {
        Self::invalid("Layer Version Cannot be less than 1")
    }
    /// 404 for GetPolicy / GetLayerVersionPolicy / Remove* on a resource without a policy.
    pub fn no_policy() -> Self {
        Self::not_found("No policy is associated with the given resource.")
    }
    /// 404 for removing a statement a resource policy does not have.
    pub fn statement_not_found(sid: &str) -> Self {
        Self::not_found(format!("Statement {sid} is not found in resource policy."))
    }
    /// 409 for adding a statement id a resource policy already has.
    pub fn statement_exists(sid: &str) -> Self {
        Self::conflict(format!(
            "The statement id ({sid}) provided already exists. Please provide a new statement \
             id, or remove the existing statement."
        ))
    }
    /// 412 for a stale `RevisionId` on a resource policy; `get_api` is the operation AWS tells
    /// the caller to use (`GetPolicy`, `GetLayerPolicy`).
    pub fn stale_policy_revision(get_api: &str) -> Self {
        Self::precondition(format!(
            "The Revision Id provided does not match the latest Revision Id. Call the {get_api} \
             API to retrieve the latest Revision Id"
        ))
    }
    /// 403 for changing a resource of another account.
    pub fn not_authorized(caller_account: &str, action: &str, resource_arn: &str) -> Self {
        Self::new(
            ErrorCode::AccessDeniedException,
            format!(
                "User: {} is not authorized to perform: {action} on resource: {resource_arn}",
                crate::arn::account_root(caller_account)
            ),
        )
    }
    /// 404 of the code-signing-config operations for a configuration that does not exist.
    pub fn code_signing_config_not_found(arn: &str) -> Self {
        Self::not_found(format!(
            "The Lambda code signing configuration {arn} can not be found."
        ))
        .untyped()
    }
    /// 404 of the function operations (CreateFunction, Put/…FunctionCodeSigningConfig) for a
    /// configuration that does not exist: a code of its own.
    pub fn code_signing_config_not_found_for_function(arn: &str) -> Self {
        Self::new(
            ErrorCode::CodeSigningConfigNotFoundException,
            format!(
                "The code signing configuration cannot be found. Check that the provided \
                 configuration is not deleted: {arn}."
            ),
        )
    }
    /// 404 for an event source mapping addressed by ARN (tags).
    pub fn event_source_mapping_not_found(arn: &str) -> Self {
        Self::not_found(format!("Event source mapping not found: {arn}"))
    }
    /// 400 for an operation name no API version of Lambda has.
    pub fn unknown_operation(operation: &str) -> Self {
        Self::new(
            ErrorCode::UnknownOperationException,
            format!("Unknown operation {operation}"),
        )
    }
    /// 400 for an operation of Lambda's API that Flint does not offer (see
    /// `operations::UNSUPPORTED`): the request is well-formed, this server cannot serve it.
    pub fn unsupported_operation(operation: &str) -> Self {
        Self::new(
            ErrorCode::UnknownOperationException,
            format!("Flint does not support the {operation} operation yet"),
        )
    }
}

/// A container image that cannot be used, as CreateFunction / UpdateFunctionCode answer it
/// (the messages are `flint_oci::ImageError`'s, worded as AWS's).
pub fn image_error(e: &flint_oci::ImageError) -> LambdaError {
    LambdaError::invalid(e.to_string())
}

/// AWS's `StateReasonCode` / `LastUpdateStatusReasonCode` for a pull that failed later.
pub fn image_reason_code(e: &flint_oci::ImageError) -> &'static str {
    use flint_oci::ImageError as E;
    match e {
        E::NotFound(_) => "ImageDeleted",
        E::AccessDenied { .. } => "ImageAccessDenied",
        E::WrongArchitecture { .. } | E::Invalid { .. } => "InvalidImage",
        E::Registry { .. } => "ImageAccessDenied",
    }
}
