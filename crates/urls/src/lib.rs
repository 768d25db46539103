//! Flint's function URL front door. A request for `http://{url-id}.lambda-url.{region}.localhost:{port}/…`
//! (by its Host header) or for the path form `/_flint/url/{url-id}/…` on the API's listener is
//! routed to the function (or alias) the URL belongs to — known from the change feed — after its
//! auth type (`NONE` or `AWS_IAM`, decided by the function's resource policy) and CORS are
//! answered; it runs as a payload format 2.0 event through the engine, and the result is mapped to
//! an HTTP response as AWS maps it. Everything else goes on to the Lambda API.

mod cors;
mod error;
mod event;
mod response;
mod routes;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use flint_control::access::Access;
use flint_control::ControlPlane;
use flint_engine::{Engine, InvokeError, InvokeRequest, Invoked};
use flint_spec::feed::Subscription;
use http::HeaderValue;
use http_body_util::BodyExt;

pub use error::UrlError;
pub use event::IamCaller;
pub use routes::{Route, Routes};

/// The path prefix of the path form (for clients that do not resolve `*.localhost`).
pub const PATH_PREFIX: &str = flint_control::url_config::URL_PATH_PREFIX;

const TRACE_HEADER: &str = "x-amzn-trace-id";

/// Checks an `AWS_IAM` URL request's SigV4 signature (service `lambda`) and names the caller's
/// account; the API's own authentication, handed in by `flint serve`.
pub type Authenticate =
    Arc<dyn Fn(&http::request::Parts, &[u8]) -> Result<String, String> + Send + Sync>;

/// The function URL service.
pub struct FunctionUrls {
    routes: Arc<Routes>,
    engine: Arc<Engine>,
    control: Arc<ControlPlane>,
    authenticate: Authenticate,
}

/// Where a request is going: a URL id and the path the function sees.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    url_id: String,
    /// The region in the Host header (the path form has none).
    region: Option<String>,
    raw_path: String,
}

impl FunctionUrls {
    pub fn new(
        changes: Subscription,
        engine: Arc<Engine>,
        control: Arc<ControlPlane>,
        authenticate: Authenticate,
    ) -> Arc<Self> {
        Arc::new(Self {
            routes: Routes::new(changes),
            engine,
            control,
            authenticate,
        })
    }

    async fn serve(&self, target: Target, req: Request) -> Result<Response, UrlError> {
        let route = self
            .routes
            .get(&target.url_id)
            .ok_or(UrlError::UnknownUrl)?;
        let function = &route.function;
        if target
            .region
            .as_deref()
            .is_some_and(|r| r != function.scope.region)
        {
            return Err(UrlError::UnknownUrl);
        }
        let cors = route.config.cors.as_ref().map(cors::Cors::from_config);
        let (mut parts, body) = req.into_parts();
        if let Some(cors) = &cors {
            if cors::is_preflight(&parts.method, &parts.headers) {
                return Ok(cors::preflight(cors, &parts.headers));
            }
        }
        let body = read_body(body).await?;

        let caller = self.authorize(&route, &parts, &body)?;
        // The caller's trace header reaches the function; without one, a new trace, whose root
        // the event's headers carry as AWS's front end adds it.
        let trace_header = match parts
            .headers
            .get(TRACE_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(t) => t.to_string(),
            None => {
                let fresh = flint_runtime_api::new_trace_id();
                let root = fresh.split(';').next().unwrap_or_default();
                if let Ok(v) = HeaderValue::from_str(root) {
                    parts.headers.insert(TRACE_HEADER, v);
                }
                fresh
            }
        };
        let spec = route.pick_version().ok_or(UrlError::UnknownUrl)?.clone();
        let request_id = uuid::Uuid::new_v4().to_string();
        let domain_name = format!(
            "{}.lambda-url.{}.localhost",
            target.url_id, function.scope.region
        );
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "127.0.0.1".to_string(), |c| c.0.ip().to_string());
        let payload = event::build(
            &event::HttpRequest {
                method: parts.method.as_str(),
                raw_path: &target.raw_path,
                raw_query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body: &body,
                source_ip,
            },
            &event::Context {
                url_id: &target.url_id,
                domain_name: &domain_name,
                request_id: &request_id,
                caller: caller.as_ref(),
                now: chrono::Utc::now(),
            },
        );
        let invoke = InvokeRequest {
            trace_header: Some(trace_header),
            async_attempt: None,
            function: spec,
            invoked_arn: route.invoked_arn(),
            payload: Bytes::from(payload).into(),
            client_context: None,
            tail_log: false,
            request_id: request_id.clone(),
        };
        let streaming = route.config.invoke_mode == "RESPONSE_STREAM";
        let result = if streaming {
            self.engine.invoke_streaming(invoke).await
        } else {
            self.engine.invoke(invoke).await.map(Invoked::Buffered)
        };
        let mut resp = match result {
            Ok(Invoked::Buffered(r)) if r.function_error.is_some() => {
                Err(function_error(&r.payload.contiguous()))
            }
            // A function that does not stream, behind a RESPONSE_STREAM URL: its result is the
            // body as it is, not read as a response (recorded: the client gets
            // `{"statusCode":200,"body":…}`).
            Ok(Invoked::Buffered(r)) if streaming => Ok(response::verbatim(r.payload)),
            Ok(Invoked::Buffered(r)) => response::map(r.payload.contiguous()),
            Ok(Invoked::Streamed(s)) => stream::respond(s).await,
            Err(InvokeError::Throttled { .. }) => Err(UrlError::Throttled),
            Err(e) => Err(UrlError::Service(e.to_string())),
        }
        .unwrap_or_else(IntoResponse::into_response);
        if let Some(cors) = &cors {
            cors::decorate(cors, &parts.headers, resp.headers_mut());
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amzn-requestid", v);
        }
        Ok(resp)
    }

    /// The URL's auth type and the function's resource policy decide: `NONE` admits anyone a
    /// public statement admits, `AWS_IAM` a signed caller of the function's account or one the
    /// policy names. `lambda:InvokeFunctionUrl` is the action asked for: AWS answered URLs
    /// granted only that in November 2025 (LocalStack's recordings), although its guide says
    /// URLs created since October 2025 need `lambda:InvokeFunction` as well.
    fn authorize(
        &self,
        route: &Route,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Option<IamCaller>, UrlError> {
        let auth_type = route.config.auth_type.as_str();
        let caller = match auth_type {
            "AWS_IAM" => {
                let header = parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(UrlError::Forbidden)?;
                let account = (self.authenticate)(parts, body).map_err(UrlError::BadSignature)?;
                Some(IamCaller {
                    access_key: access_key_of(header).to_string(),
                    account_id: account,
                })
            }
            _ => None,
        };
        let function = &route.function;
        let access = Access {
            caller_account: caller.as_ref().map(|c| c.account_id.as_str()),
            action: "lambda:InvokeFunctionUrl",
            url_auth_type: Some(auth_type),
            via_function_url: true,
        };
        if self.control.allows(
            &function.scope,
            &function.name,
            route.alias.as_deref(),
            &access,
        ) {
            Ok(caller)
        } else {
            Err(UrlError::Forbidden)
        }
    }
}

/// `Credential=AKID/date/region/service/aws4_request` → `AKID`.
fn access_key_of(authorization: &str) -> &str {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or("")
}

/// A function error as the URL answers it: a timeout is 504, anything else 502.
fn function_error(payload: &[u8]) -> UrlError {
    let error_type = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("errorType")?.as_str().map(str::to_string));
    match error_type.as_deref() {
        Some("Sandbox.Timedout") => UrlError::TimedOut,
        _ => UrlError::FunctionError,
    }
}

async fn read_body(body: Body) -> Result<Bytes, UrlError> {
    match http_body_util::Limited::new(body, error::REQUEST_LIMIT)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(UrlError::RequestTooLarge)
        }
        Err(e) => Err(UrlError::Service(e.to_string())),
    }
}

/// The URL a request is for, by its Host header (`{id}.lambda-url.{region}.…`) or the path form.
fn target_of(req: &Request) -> Option<Target> {
    target_in(req.headers(), req.uri())
}

/// Whether a request is a function URL's (by Host or path form): what the front door serves.
pub fn claims(headers: &http::HeaderMap, uri: &http::Uri) -> bool {
    target_in(headers, uri).is_some()
}

fn target_in(headers: &http::HeaderMap, uri: &http::Uri) -> Option<Target> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.host());
    if let Some(host) = host {
        let mut labels = host.split('.');
        if let (Some(id), Some("lambda-url"), Some(region)) =
            (labels.next(), labels.next(), labels.next())
        {
            return Some(Target {
                url_id: id.to_ascii_lowercase(),
                region: Some(region.to_string()),
                raw_path: uri.path().to_string(),
            });
        }
    }
    let rest = uri.path().strip_prefix(PATH_PREFIX)?;
    let (id, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some(Target {
        url_id: id.to_string(),
        region: None,
        raw_path: path.to_string(),
    })
}

async fn front_door(State(urls): State<Arc<FunctionUrls>>, req: Request, next: Next) -> Response {
    match target_of(&req) {
        Some(target) => urls
            .serve(target, req)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        None => next.run(req).await,
    }
}

/// Puts the function URL front door in front of `api`: requests for a URL (by Host or path form,
/// [`claims`]) are served here, everything else reaches `api` untouched.
pub fn in_front_of(api: Router, urls: Arc<FunctionUrls>) -> Router {
    api.layer(axum::middleware::from_fn_with_state(urls, front_door))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, path: &str) -> Request {
        Request::builder()
            .uri(path)
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn the_host_form_and_the_path_form_name_the_url() {
        assert_eq!(
            target_of(&request(
                "abc.lambda-url.eu-west-1.localhost:9000",
                "/x/y?q=1"
            )),
            Some(Target {
                url_id: "abc".into(),
                region: Some("eu-west-1".into()),
                raw_path: "/x/y".into(),
            })
        );
        assert_eq!(
            target_of(&request("127.0.0.1:9000", "/_flint/url/abc/x")),
            Some(Target {
                url_id: "abc".into(),
                region: None,
                raw_path: "/x".into(),
            })
        );
        assert_eq!(
            target_of(&request("127.0.0.1:9000", "/_flint/url/abc")).map(|t| t.raw_path),
            Some("/".into())
        );
        assert_eq!(
            target_of(&request("127.0.0.1:9000", "/2015-03-31/functions")),
            None
        );
    }

    #[test]
    fn the_access_key_comes_from_the_credential() {
        assert_eq!(
            access_key_of("AWS4-HMAC-SHA256 Credential=111122223333/20250101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=x"),
            "111122223333"
        );
    }
}
