//! One info line per request (method, path, status, duration), an `x-amzn-RequestId` on every
//! response, and the guarantee that a panicking handler answers 500 `ServiceException` instead of
//! dropping the connection.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;

use crate::error::ApiError;

/// This request's id (a UUID), shared by the logs, the response header and — for invokes — the
/// function's context.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Polls a future, turning a panic inside it into `Err`.
struct CatchPanic<F: ?Sized>(Pin<Box<F>>);

impl<F: Future + ?Sized> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                Poll::Ready(Err(what))
            }
        }
    }
}

/// A new request id.
pub(crate) fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The middleware form of [`logged`], for every route of the axum app.
pub(crate) async fn access_log(mut req: Request, next: Next) -> Response {
    let id = new_request_id();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    // A clone of the URI shares its bytes: no copy of the path per request.
    let uri = req.uri().clone();
    logged(&id, &method, &uri, Box::pin(next.run(req))).await
}

/// A request's handler, boxed where it is made: the futures around it stay small (moving them
/// copies no more than a pointer to it).
pub(crate) type Handler<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// Runs a request's handler: a panic answers 500 `ServiceException`, the response carries
/// `x-amzn-RequestId`, and one info line records the request. The Invoke route in front of the
/// axum app (`crate::fast`) and the app's middleware both come through here.
pub(crate) async fn logged(
    id: &str,
    method: &http::Method,
    uri: &http::Uri,
    handler: Handler<'_>,
) -> Response {
    let started = Instant::now();
    let path = uri.path();
    let mut resp = match CatchPanic(handler).await {
        Ok(r) => r,
        Err(what) => {
            tracing::error!(request_id = %id, "handler panicked on {method} {path}: {what}");
            ApiError::service("An internal error occurred.").into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().entry("x-amzn-RequestId").or_insert(v);
    }
    tracing::info!(
        "{method} {path} {} {:.3}ms",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    resp
}
