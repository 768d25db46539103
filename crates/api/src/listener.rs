//! The API's TCP listener (function URLs included, served on it): the axum app on
//! `flint_listener`'s connection loop, with its header-read / keep-alive idle deadline and its
//! connection cap, so that slowloris or idle clients cannot hold Flint's descriptors.

use std::convert::Infallible;
use std::future::Future;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tower::ServiceExt;

pub use flint_listener::ListenerLimits;

/// Serves `app` on `listener` until `shutdown` resolves; then lets the requests in flight finish
/// (the caller bounds how long it waits for the returned future). `extension`, if any, is added
/// to every request (how the API knows a request came through an environment's own listener).
pub async fn serve<E>(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ListenerLimits,
    extension: Option<E>,
    shutdown: impl Future<Output = ()> + Send,
) where
    E: Clone + Send + Sync + 'static,
{
    flint_listener::serve(listener, limits, shutdown, move |conn| {
        let app = app.clone();
        let extension = extension.clone();
        let svc = service_fn(move |mut req: http::Request<Incoming>| {
            // Who connected, as axum's `ConnectInfo` (function URLs' `sourceIp`).
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(conn.peer));
            if let Some(e) = &extension {
                req.extensions_mut().insert(e.clone());
            }
            let app = app.clone();
            async move {
                let req = req.map(axum::body::Body::new);
                Ok::<_, Infallible>(match app.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
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
    use std::time::{Duration, Instant};
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

    #[tokio::test]
    async fn a_slowloris_client_is_closed_after_the_header_timeout() {
        let addr = start(short(16)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        // One byte of a never-ending header every 50 ms.
        let writer = async {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.ok();
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if s.write_all(b"X").await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "held for {elapsed:?}");
    }

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

    #[tokio::test]
    async fn a_connection_that_never_speaks_is_closed() {
        let addr = start(short(16)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut s))
            .await
            .expect("the silent connection was never closed");
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_slot() {
        let addr = start(ListenerLimits {
            header_read_timeout: Some(Duration::from_secs(60)),
            max_connections: 2,
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            held.push(s);
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf))
                .await
                .is_err(),
            "a third connection was served beyond the cap"
        );
        held.pop();
        let got = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut third))
            .await
            .expect("the waiting connection was never served");
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    }
}
