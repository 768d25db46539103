//! The API's TCP listener (function URLs included, served on it): the axum app, and the Invoke
//! route in front of it (`fast.rs`), on `flint_listener`'s connection loop, with its header-read
//! / keep-alive idle deadline and its connection cap, so that slowloris or idle clients cannot
//! hold Flint's descriptors.

use std::convert::Infallible;
use std::future::Future;

use hyper::body::Incoming;
use hyper::service::service_fn;
use tower::ServiceExt;

pub use flint_listener::ListenerLimits;

use crate::Api;

/// Serves `api` (an [`Api`], or a bare axum `Router`) on `listener` until `shutdown` resolves; then lets the requests in flight finish
/// (the caller bounds how long it waits for the returned future). `extension`, if any, is added
/// to every request (how the API knows a request came through an environment's own listener).
pub async fn serve<E>(
    listener: tokio::net::TcpListener,
    api: impl Into<Api>,
    limits: ListenerLimits,
    extension: Option<E>,
    shutdown: impl Future<Output = ()> + Send,
) where
    E: Clone + Send + Sync + 'static,
{
    let api: Api = api.into();
    flint_listener::serve(listener, limits, shutdown, move |conn| {
        let api = api.clone();
        let extension = extension.clone();
        let svc = service_fn(move |mut req: http::Request<Incoming>| {
            if let Some(e) = &extension {
                req.extensions_mut().insert(e.clone());
            }
            let way = match api.fast_route(&req) {
                Some(route) => Ok(route.clone()),
                None => Err(api.router()),
            };
            async move {
                let mut req = req.map(axum::body::Body::new);
                Ok::<_, Infallible>(match way {
                    Ok(route) => route.serve(req).await,
                    Err(app) => {
                        // Who connected, as axum's `ConnectInfo` (function URLs' `sourceIp`).
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(conn.peer));
                        match app.oneshot(req).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        }
                    }
                })
            }
        });
        std::future::ready(Some(svc))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::net::TcpStream;

    async fn start(limits: ListenerLimits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve::<()>(
            listener,
            app,
            limits,
            None,
            std::future::pending(),
        ));
        addr
    }

    fn short(max_connections: usize) -> ListenerLimits {
        ListenerLimits {
            header_read_timeout: Some(Duration::from_millis(300)),
            max_connections,
        }
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    }

    // The deadlines and the cap themselves are tested in `flint_listener`; here, that the app is
    // served on its loop and its limits apply.
    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed() {
        let addr = start(short(16)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut s))
            .await
            .expect("the idle connection was never closed");
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    }
}
