//! The X-Ray API on Flint's endpoint: restJson1 requests (`POST /TraceSummaries`, `POST /Traces`
//! …) told apart from the Lambda API's by their SigV4 scope's service, `xray`, answered from the
//! functions' kept segments (crate flint-logs' [`flint_logs::TraceStore`]) and their errors
//! rendered as X-Ray renders them: `x-amzn-ErrorType` and `{"Message": ...}`.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use flint_logs::{XrayError, XrayErrorCode};
use http::{HeaderValue, StatusCode};

use crate::{ApiError, AppState, Backend};

/// X-Ray's requests are small (BatchGetTraces: five ids).
const REQUEST_LIMIT: usize = 1_048_576;

/// Every operation of the X-Ray API by its path (all are `POST`).
const OPERATIONS: &[(&str, &str)] = &[
    ("/Traces", "BatchGetTraces"),
    ("/CancelTraceRetrieval", "CancelTraceRetrieval"),
    ("/CreateGroup", "CreateGroup"),
    ("/CreateSamplingRule", "CreateSamplingRule"),
    ("/DeleteGroup", "DeleteGroup"),
    ("/DeleteResourcePolicy", "DeleteResourcePolicy"),
    ("/DeleteSamplingRule", "DeleteSamplingRule"),
    ("/EncryptionConfig", "GetEncryptionConfig"),
    ("/GetGroup", "GetGroup"),
    ("/Groups", "GetGroups"),
    ("/GetIndexingRules", "GetIndexingRules"),
    ("/Insight", "GetInsight"),
    ("/InsightEvents", "GetInsightEvents"),
    ("/InsightImpactGraph", "GetInsightImpactGraph"),
    ("/InsightSummaries", "GetInsightSummaries"),
    ("/GetRetrievedTracesGraph", "GetRetrievedTracesGraph"),
    ("/GetSamplingRules", "GetSamplingRules"),
    (
        "/SamplingStatisticSummaries",
        "GetSamplingStatisticSummaries",
    ),
    ("/SamplingTargets", "GetSamplingTargets"),
    ("/ServiceGraph", "GetServiceGraph"),
    (
        "/TimeSeriesServiceStatistics",
        "GetTimeSeriesServiceStatistics",
    ),
    ("/TraceGraph", "GetTraceGraph"),
    ("/GetTraceSegmentDestination", "GetTraceSegmentDestination"),
    ("/TraceSummaries", "GetTraceSummaries"),
    ("/ListResourcePolicies", "ListResourcePolicies"),
    ("/ListRetrievedTraces", "ListRetrievedTraces"),
    ("/ListTagsForResource", "ListTagsForResource"),
    ("/PutEncryptionConfig", "PutEncryptionConfig"),
    ("/PutResourcePolicy", "PutResourcePolicy"),
    ("/TelemetryRecords", "PutTelemetryRecords"),
    ("/TraceSegments", "PutTraceSegments"),
    ("/StartTraceRetrieval", "StartTraceRetrieval"),
    ("/TagResource", "TagResource"),
    ("/UntagResource", "UntagResource"),
    ("/UpdateGroup", "UpdateGroup"),
    ("/UpdateIndexingRule", "UpdateIndexingRule"),
    ("/UpdateSamplingRule", "UpdateSamplingRule"),
    (
        "/UpdateTraceSegmentDestination",
        "UpdateTraceSegmentDestination",
    ),
];

/// Whether the request is signed for X-Ray (`Credential=…/<date>/<region>/xray/aws4_request`).
/// Asked of every request before the Lambda API's routing: a scan of the header, no allocation
/// (the full parse and the signature check come after, in [`handle`]).
pub(crate) fn signed_for_xray(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once("Credential="))
        .and_then(|(_, rest)| rest.split([',', ' ']).next())
        .is_some_and(|scope| scope.ends_with("/xray/aws4_request"))
}

fn respond(status: StatusCode, body: &serde_json::Value, error_type: Option<&str>) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(t) = error_type.and_then(|t| HeaderValue::from_str(t).ok()) {
        r.headers_mut().insert("x-amzn-ErrorType", t);
    }
    r
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    respond(
        status,
        &serde_json::json!({ "Message": message }),
        Some(code),
    )
}

fn error(e: &XrayError) -> Response {
    error_response(
        StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST),
        e.code.as_str(),
        &e.message,
    )
}

fn auth_error(e: &ApiError) -> Response {
    error_response(e.status, e.code, &e.message)
}

pub(crate) async fn handle<B: Backend>(
    st: &AppState<B>,
    parts: http::request::Parts,
    body: Body,
    _request_id: &str,
) -> Response {
    let body: Bytes = match crate::read_body(body, REQUEST_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return error(&XrayError::invalid(
                "The request body could not be read or is too large.",
            ))
        }
    };
    let scope = match st.authenticate_for("xray", &parts, &body) {
        Ok(s) => s,
        Err(e) => return auth_error(&e),
    };
    let Some(operation) = OPERATIONS
        .iter()
        .find(|(path, _)| *path == parts.uri.path())
        .filter(|_| parts.method == http::Method::POST)
        .map(|(_, op)| *op)
    else {
        return error_response(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        );
    };
    let input: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return error(&XrayError::invalid("The request body is not valid JSON."));
            }
        }
    };
    let Some(root) = st.backend.traces_root() else {
        return error(&XrayError {
            code: XrayErrorCode::ServiceUnavailableException,
            message: "This Flint keeps no traces.".into(),
        });
    };
    let store = flint_logs::TraceStore::new(root.join(&scope.account).join(&scope.region));
    // Reading the segment files is file I/O: off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        flint_logs::xray_execute(&store, &scope.account, operation, &input)
    })
    .await;
    match result {
        Ok(Ok(out)) => respond(StatusCode::OK, &out, None),
        Ok(Err(e)) => error(&e),
        Err(e) => error(&XrayError {
            code: XrayErrorCode::ServiceUnavailableException,
            message: format!("reading segments: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_model_has_a_path() {
        assert_eq!(OPERATIONS.len(), 38);
        for op in flint_logs::XRAY_SUPPORTED {
            assert!(OPERATIONS.iter().any(|(_, o)| *o == op), "{op}");
        }
    }

    #[test]
    fn requests_signed_for_xray_are_told_apart() {
        let req = |service: &str| {
            http::Request::post("/TraceSummaries")
                .header(
                    http::header::AUTHORIZATION,
                    format!(
                        "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=abc"
                    ),
                )
                .body(())
                .map(|r| r.into_parts().0)
        };
        assert!(req("xray").is_ok_and(|p| signed_for_xray(&p.headers)));
        assert!(req("lambda").is_ok_and(|p| !signed_for_xray(&p.headers)));
        assert!(req("xrayz").is_ok_and(|p| !signed_for_xray(&p.headers)));
    }
}
