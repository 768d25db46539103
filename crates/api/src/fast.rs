//! The Invoke route in front of the axum app: the hot path of the API, served straight from the
//! connection's service without axum's router, its middleware stack (the function-URL front door,
//! the access log's `from_fn`) and their per-request boxing and cloning. Same handling and same
//! answers as through the app: the access log's wrapper ([`access_log::logged`]: request id,
//! `x-amzn-RequestId`, a panic answered 500, the log line), then the handler the app's fallback
//! runs ([`crate::serve_matched`]). Only requests that the app would route to that handler are
//! taken: `POST /2015-03-31/functions/{FunctionName}/invocations`, not a CloudWatch Logs or X-Ray
//! request, and nothing a layer put in front of the app claims (a function URL's Host).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::ApiError;
use crate::{access_log, serve_matched, sigv4, xray, AppState, Backend};

/// Serves a request it was given by [`Api::fast_route`], without the app.
pub(crate) trait FastRoute: Send + Sync + 'static {
    fn serve(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>>;
}

impl<B: Backend> FastRoute for AppState<B> {
    fn serve(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            let id = access_log::new_request_id();
            let method = req.method().clone();
            let uri = req.uri().clone();
            let handler = Box::pin(async {
                invoke(self, req, &id)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            });
            access_log::logged(&id, &method, &uri, handler).await
        })
    }
}

/// What [`crate::handle`] does for a request it routes to Invoke.
async fn invoke<B: Backend>(
    st: &AppState<B>,
    req: Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    // AWS refuses unsigned requests before looking at the path.
    if !parts.headers.contains_key(http::header::AUTHORIZATION) {
        return Err(sigv4::missing_token());
    }
    let matched = st
        .routes
        .find_invoke(&parts.method, parts.uri.path())
        .or_else(|| {
            st.routes
                .find(&parts.method, parts.uri.path(), parts.uri.query())
        });
    serve_matched(st, parts, body, matched, request_id).await
}

/// Requests a layer in front of the app serves itself (it is given the request's headers and
/// URI).
pub type Claims = fn(&http::HeaderMap, &http::Uri) -> bool;

/// The Lambda API as served: the axum app, and the Invoke route that runs in front of it.
#[derive(Clone)]
pub struct Api {
    router: Router,
    invoke: Option<Arc<dyn FastRoute>>,
    /// What layers put in front of the app ([`Api::in_front`]) claim: never the Invoke route's.
    claimed_in_front: Vec<Claims>,
}

impl Api {
    pub(crate) fn new(router: Router, invoke: Arc<dyn FastRoute>) -> Self {
        Self {
            router,
            invoke: Some(invoke),
            claimed_in_front: Vec::new(),
        }
    }

    /// The axum app (every request).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Puts `layer` in front of the app; `claims` says which requests it serves itself, which
    /// the Invoke route then leaves to the app.
    pub fn in_front(mut self, layer: impl FnOnce(Router) -> Router, claims: Claims) -> Self {
        self.router = layer(self.router);
        self.claimed_in_front.push(claims);
        self
    }

    /// The route that serves `req` outside the app, if it is an Invoke request no layer in
    /// front claims.
    pub(crate) fn fast_route<T>(&self, req: &http::Request<T>) -> Option<&Arc<dyn FastRoute>> {
        let invoke = self.invoke.as_ref()?;
        let (headers, uri) = (req.headers(), req.uri());
        if self.claimed_in_front.iter().any(|c| c(headers, uri)) {
            return None;
        }
        let path = uri.path();
        let plausible = req.method() == http::Method::POST
            && path.starts_with("/2015-03-31/functions/")
            && (path.ends_with("/invocations") || path.ends_with("/invocations/"));
        // CloudWatch Logs (`X-Amz-Target`) and X-Ray requests take the app's way, where
        // `handle` looks for them first.
        (plausible && !headers.contains_key("x-amz-target") && !xray::signed_for_xray(headers))
            .then_some(invoke)
    }
}

impl From<Router> for Api {
    /// An app served as it is, with no route in front.
    fn from(router: Router) -> Self {
        Self {
            router,
            invoke: None,
            claimed_in_front: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl FastRoute for Nothing {
        fn serve(&self, _: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
            Box::pin(async { Response::new(axum::body::Body::empty()) })
        }
    }

    fn url_host(headers: &http::HeaderMap, _: &http::Uri) -> bool {
        headers
            .get(http::header::HOST)
            .is_some_and(|h| h.as_bytes().starts_with(b"abc.lambda-url."))
    }

    fn taken(api: &Api, method: &str, path: &str, headers: &[(&str, &str)]) -> bool {
        let mut req = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        api.fast_route(&req.body(()).unwrap()).is_some()
    }

    #[test]
    fn only_invokes_no_layer_claims_take_the_route() {
        let api = Api::new(Router::new(), Arc::new(Nothing)).in_front(|r| r, url_host);
        let invoke = "/2015-03-31/functions/f/invocations";
        let signed = |service: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/{service}/aws4_request, \
                 SignedHeaders=host, Signature=00"
            )
        };
        let lambda = signed("lambda");
        assert!(taken(&api, "POST", invoke, &[("authorization", &lambda)]));
        assert!(taken(&api, "POST", &format!("{invoke}/?Qualifier=1"), &[]));
        assert!(!taken(&api, "GET", invoke, &[]));
        assert!(!taken(&api, "POST", "/2015-03-31/functions/f/policy", &[]));
        assert!(!taken(&api, "POST", "/2015-03-31/functions", &[]));
        // A function URL's request, whatever its path.
        assert!(!taken(
            &api,
            "POST",
            invoke,
            &[("host", "abc.lambda-url.us-east-1.localhost")]
        ));
        // CloudWatch Logs and X-Ray on the same endpoint.
        assert!(!taken(
            &api,
            "POST",
            invoke,
            &[("x-amz-target", "Logs_20140328.GetLogEvents")]
        ));
        assert!(!taken(
            &api,
            "POST",
            invoke,
            &[("authorization", &signed("xray"))]
        ));
        // A bare router has no route in front.
        assert!(!taken(&Api::from(Router::new()), "POST", invoke, &[]));
    }
}
