//! Every way a function URL request fails before or around the function, and the one place each
//! becomes the status, `x-amzn-ErrorType` and body a Lambda function URL answers with.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

/// Largest request body a URL accepts (AWS's synchronous invoke payload limit).
pub const REQUEST_LIMIT: usize = 6_291_456;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// No URL has this id: AWS answers it as a URL the policy does not open (recorded for the
    /// URL of a deleted alias, November 2025).
    #[error(
        "Forbidden. For troubleshooting Function URL authorization issues, see: \
         https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
    )]
    UnknownUrl,
    /// The caller is not authenticated as the auth type requires, or the resource policy does not
    /// allow it (AWS's message, recorded in November 2025).
    #[error(
        "Forbidden. For troubleshooting Function URL authorization issues, see: \
         https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
    )]
    Forbidden,
    /// An `AWS_IAM` URL's request signature is malformed or wrong.
    #[error("{0}")]
    BadSignature(String),
    #[error("Request must be smaller than {REQUEST_LIMIT} bytes for the InvokeFunction operation")]
    RequestTooLarge,
    #[error("Rate Exceeded.")]
    Throttled,
    /// The function failed, or answered something a URL cannot send.
    #[error("Internal Server Error")]
    FunctionError,
    /// The function ran past its timeout.
    #[error("Gateway Timeout")]
    TimedOut,
    /// Flint's own failure.
    #[error("{0}")]
    Service(String),
}

impl UrlError {
    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownUrl | Self::Forbidden => (StatusCode::FORBIDDEN, "AccessDeniedException"),
            Self::BadSignature(_) => (StatusCode::FORBIDDEN, "InvalidSignatureException"),
            Self::RequestTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
            ),
            Self::Throttled => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException"),
            Self::FunctionError => (StatusCode::BAD_GATEWAY, "Unhandled"),
            Self::TimedOut => (StatusCode::GATEWAY_TIMEOUT, "Sandbox.Timedout"),
            Self::Service(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ServiceException"),
        }
    }
}

impl IntoResponse for UrlError {
    fn into_response(self) -> Response {
        let (status, error_type) = self.status_and_type();
        let body = match &self {
            Self::FunctionError | Self::TimedOut => self.to_string(),
            _ => serde_json::json!({ "Message": self.to_string() }).to_string(),
        };
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_the_policy_does_not_open_answers_awss_troubleshooting_message() {
        assert_eq!(
            UrlError::Forbidden.to_string(),
            "Forbidden. For troubleshooting Function URL authorization issues, see: \
             https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
        );
        // Recorded for the URL of a deleted alias (test_lambda_url_persists_after_alias_delete).
        assert_eq!(
            UrlError::UnknownUrl.to_string(),
            UrlError::Forbidden.to_string()
        );
    }
}
