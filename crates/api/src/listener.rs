//! The API's TCP listener with the limits a public front door needs: a deadline for a request's
//! headers (which also closes keep-alive connections left idle: hyper starts the same timer while
//! it waits for the next request), and a cap on open connections, so that slowloris or idle
//! clients cannot hold Flint's descriptors and starve every invoke.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The limits of one listener.
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Time a client has to send a request's headers, counted from the end of the previous
    /// response on a kept-alive connection (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Connections served at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then lets the requests in flight finish
/// (the caller bounds how long it waits for the returned future). `extension`, if any, is added
/// to every request (how the API knows a request came through an environment's own listener).
pub async fn serve<E>(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    extension: Option<E>,
    shutdown: impl Future<Output = ()> + Send,
) where
    E: Clone + Send + Sync + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, clients wait in the accept queue rather than holding
        // descriptors of ours.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::debug!("api accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let extension = extension.clone();
        let mut stop = stop_rx.clone();
        let header_read_timeout = limits.header_read_timeout;
        conns.spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |mut req: http::Request<Incoming>| {
                // Who connected, as axum's `ConnectInfo` (function URLs' `sourceIp`).
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
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
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            header_read_timeout: Duration::from_millis(300),
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
            header_read_timeout: Duration::from_secs(60),
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
