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
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            ValidationException
            | InvalidParameterValueException
            | InvalidRequestContentException
            | CodeStorageExceededException => 400,
            AccessDeniedException
            | UnrecognizedClientException
            | InvalidSignatureException
            | MissingAuthenticationTokenException => 403,
            ResourceNotFoundException
            | CodeSigningConfigNotFoundException
            | ProvisionedConcurrencyConfigNotFoundException
            | UnknownOperationException => 404,
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
}

impl LambdaError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
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
}
