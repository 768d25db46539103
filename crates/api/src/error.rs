//! The one place errors become HTTP responses, as AWS Lambda renders them: the status, an
//! `x-amzn-ErrorType: <Code>` header (what SDKs read the code from) and a JSON body
//! `{"Type": "User"|"Server", "message": ...}` — `Message` for the exceptions the model spells so;
//! a few errors come without `Type` ([`LambdaError::typed`]), an empty message is `null`.

use axum::response::{IntoResponse, Response};
use flint_control::{ErrorCode, LambdaError};
use flint_engine::InvokeError;
use http::{HeaderValue, StatusCode};

use crate::model::MODEL;

/// Any error the api answers with: its AWS code, status and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ApiError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
    /// Extra top-level body fields (`Reason` on throttles).
    pub extra: Vec<(&'static str, String)>,
    /// `"Type": "User"|"Server"` in the body (most of AWS's errors; see [`LambdaError::typed`]).
    pub typed: bool,
}

impl ApiError {
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            extra: Vec::new(),
            typed: true,
        }
    }

    /// An error of one of Lambda's own codes, with the status the model gives it.
    pub fn lambda(code: ErrorCode, message: impl Into<String>) -> Self {
        let name = code.as_str();
        let status = MODEL
            .shape_named(name)
            .and_then(|s| s.error.as_ref())
            .map(|e| e.status)
            .unwrap_or_else(|| code.status());
        Self::new(
            name,
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            message,
        )
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", StatusCode::BAD_REQUEST, message)
    }

    pub fn unknown_operation() -> Self {
        Self::new(
            "UnknownOperationException",
            StatusCode::NOT_FOUND,
            "Unknown operation",
        )
    }

    pub fn service(message: impl Into<String>) -> Self {
        Self::lambda(ErrorCode::ServiceException, message)
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
        self
    }
}

impl From<LambdaError> for ApiError {
    fn from(e: LambdaError) -> Self {
        let mut out = ApiError::lambda(e.code, e.message);
        out.extra = e.extra;
        out.typed = e.typed;
        out
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        match e {
            InvokeError::Throttled { reason } => {
                ApiError::lambda(ErrorCode::TooManyRequestsException, "Rate Exceeded.")
                    .with("Reason", reason.as_str())
            }
            InvokeError::InvalidRuntime(m) => {
                ApiError::lambda(ErrorCode::InvalidRuntimeException, m)
            }
            InvokeError::Service(m) => ApiError::service(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let shape = MODEL.shape_named(self.code).and_then(|s| s.error.as_ref());
        let message_key = shape.map(|s| s.message_key).unwrap_or("message");
        let kind = if self.status.is_server_error() {
            "Server"
        } else {
            "User"
        };
        let mut body = serde_json::Map::new();
        if self.typed {
            body.insert("Type".into(), kind.into());
        }
        // Where AWS has no message it sends `null` (AccessDeniedException for another account's
        // function ARN at CreateFunction: SDKs then read no message, not an empty one).
        let message = if self.message.is_empty() {
            serde_json::Value::Null
        } else {
            self.message.into()
        };
        body.insert(message_key.into(), message);
        for (k, v) in self.extra {
            body.insert(k.into(), v.into());
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (self.status, bytes).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use flint_engine::ThrottleReason;

    async fn render(e: ApiError) -> (StatusCode, String, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status();
        let code = resp.headers()["x-amzn-ErrorType"]
            .to_str()
            .unwrap()
            .to_string();
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, code, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn resource_not_found_uses_capital_message_key_as_the_model_does() {
        let (status, code, body) =
            render(LambdaError::not_found("Function not found: arn:x").into()).await;
        assert_eq!(status, 404);
        assert_eq!(code, "ResourceNotFoundException");
        assert_eq!(
            body,
            serde_json::json!({"Type": "User", "Message": "Function not found: arn:x"})
        );
    }

    #[tokio::test]
    async fn throttle_carries_reason_and_429() {
        let e: ApiError = InvokeError::Throttled {
            reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
        }
        .into();
        let (status, code, body) = render(e).await;
        assert_eq!(status, 429);
        assert_eq!(code, "TooManyRequestsException");
        assert_eq!(body["message"], "Rate Exceeded.");
        assert_eq!(
            body["Reason"],
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        assert_eq!(body["Type"], "User");
    }

    #[tokio::test]
    async fn service_errors_are_typed_server() {
        let (status, _, body) = render(ApiError::service("boom")).await;
        assert_eq!(status, 500);
        assert_eq!(body["Type"], "Server");
        assert_eq!(body["Message"], "boom");
    }

    #[tokio::test]
    async fn unmodeled_errors_use_lowercase_message() {
        let (status, code, body) =
            render(ApiError::validation("1 validation error detected: x")).await;
        assert_eq!(status, 400);
        assert_eq!(code, "ValidationException");
        assert_eq!(body["message"], "1 validation error detected: x");
    }

    #[tokio::test]
    async fn untyped_errors_and_empty_messages_are_rendered_as_aws_does() {
        let e = LambdaError::invalid(
            "$LATEST is not supported for an alias pointing to more than 1 version",
        )
        .untyped();
        let (status, _, body) = render(e.into()).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            serde_json::json!({"message": "$LATEST is not supported for an alias pointing to more than 1 version"})
        );
        let e = LambdaError::new(ErrorCode::AccessDeniedException, "").untyped();
        let (status, code, body) = render(e.into()).await;
        assert_eq!(
            (status.as_u16(), code.as_str()),
            (403, "AccessDeniedException")
        );
        assert_eq!(body, serde_json::json!({"message": null}));
    }
}
