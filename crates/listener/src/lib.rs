//! Flint's HTTP/1.1 listeners — the API (and the function URLs served on it), the API inside
//! each isolated environment, and every environment's Runtime API — with the limits a server
//! others can reach needs: a deadline for a request's headers (which also closes keep-alive
//! connections left idle: hyper starts the same timer while it waits for the next request), and
//! a cap on open connections, so that slowloris or idle clients cannot hold Flint's descriptors
//! and starve every invoke. One implementation for all of them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// The limits of one listener.
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Time a client has to send a request's headers, counted from the end of the previous
    /// response on a kept-alive connection (so it is also the keep-alive idle timeout). None:
    /// no deadline (the Runtime API, whose clients are frozen with their environment).
    pub header_read_timeout: Option<Duration>,
    /// Connections served at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(30)),
            max_connections: 4096,
        }
    }
}

/// Who connected: the peer, and the address it connected to.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// Serves connections on `listener` until `shutdown` resolves; then lets the requests in
/// flight finish (the caller bounds how long it waits for the returned future; aborting the
/// task that runs it ends every connection at once). `admit` decides, per connection and within
/// its slot, whether it is served and by which service (None: closed).
pub async fn serve<A, AF, S, B>(
    listener: TcpListener,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send,
    admit: A,
) where
    A: Fn(Connection) -> AF,
    AF: Future<Output = Option<S>> + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
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
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = &mut shutdown => break,
        };
        // Small request/response exchanges: Nagle would add tens of milliseconds.
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let admitted = admit(Connection { peer, local });
        let mut stop = stop_rx.clone();
        let header_read_timeout = limits.header_read_timeout;
        conns.spawn(async move {
            let _permit = permit;
            let Some(svc) = admitted.await else {
                return;
            };
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new()).keep_alive(true);
            // hyper's default is 30 s: "no deadline" must say so.
            builder.header_read_timeout(header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
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
    use std::convert::Infallible;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    type Reply = http::Response<http_body_util::Full<bytes::Bytes>>;

    async fn ok(_: http::Request<Incoming>) -> Result<Reply, Infallible> {
        Ok(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(b"ok"),
        )))
    }

    async fn start_admitting(limits: ListenerLimits, admit_all: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            limits,
            std::future::pending(),
            move |_conn| async move { admit_all.then_some(hyper::service::service_fn(ok)) },
        ));
        addr
    }

    async fn start(limits: ListenerLimits) -> SocketAddr {
        start_admitting(limits, true).await
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
    async fn without_a_deadline_an_idle_connection_stays_open() {
        let addr = start(ListenerLimits {
            header_read_timeout: None,
            max_connections: 4,
        })
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        // Well past hyper's own 30 s default would be too slow a test; past ours is the point.
        assert!(
            tokio::time::timeout(Duration::from_millis(800), s.read(&mut buf))
                .await
                .is_err(),
            "closed without a deadline"
        );
    }

    #[tokio::test]
    async fn a_connection_refused_by_admission_is_closed_at_once() {
        let addr = start_admitting(short(16), false).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), until_closed(&mut s))
            .await
            .expect("a refused connection was kept");
        assert!(got.is_empty(), "{got:?}");
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
