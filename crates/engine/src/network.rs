//! What a function can reach, and as whom it calls Flint. With `FunctionNetwork::Isolated` (the
//! default of `flint serve`) every environment has a network namespace of its own: the Runtime
//! API and Flint's Lambda API are listeners inside it (169.254.100.1:9001 and :9000), nothing of
//! the host's loopback is reachable. Each environment gets temporary credentials bound to its
//! function's account ([`IssuedCredentials`]); the API verifies them in every mode, and a request
//! through an environment's own listener acts as that environment ([`SandboxCaller`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::RwLock;

/// Where functions' processes live on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FunctionNetwork {
    /// A network namespace per environment (no host loopback; Flint's API at
    /// `AWS_ENDPOINT_URL_LAMBDA`).
    #[default]
    Isolated,
    /// The host's network, shared by every function (local development that needs the host's
    /// loopback services). Any function can then reach any local service, Flint's API included.
    Host,
}

/// `AWS_ENDPOINT_URL_LAMBDA` of an isolated environment: Flint's API as reached from inside.
pub fn lambda_endpoint_in_namespace() -> String {
    format!(
        "http://{}:{}",
        flint_sandbox::NAMESPACE_HOST,
        flint_sandbox::LAMBDA_API_PORT
    )
}

/// The X-Ray daemon's UDP port at [`flint_sandbox::NAMESPACE_HOST`] in an isolated environment
/// (`AWS_XRAY_DAEMON_ADDRESS`): Flint accepts the segments sent there and drops them.
pub const XRAY_DAEMON_PORT: u16 = 2000;

/// Ports inside the namespace that a forwarded endpoint may not take (Flint's own listeners).
const RESERVED_PORTS: [u16; 2] = [
    flint_sandbox::RUNTIME_API_PORT,
    flint_sandbox::LAMBDA_API_PORT,
];
/// Where forwarded endpoints go when their own port is taken.
const FIRST_SPARE_PORT: u16 = 9100;

/// An AWS endpoint on the host's loopback as an isolated environment reaches it: a listener at
/// `169.254.100.1:inside_port` in its namespace, whose connections Flint forwards to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointForward {
    pub inside_port: u16,
    pub target: SocketAddr,
}

/// The `AWS_ENDPOINT_URL*` variables of isolated environments, and the forwarders they need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NamespaceEndpoints {
    pub vars: Vec<(String, String)>,
    pub forwards: Vec<EndpointForward>,
}

impl NamespaceEndpoints {
    /// The sockets every isolated sandbox needs for these (and the X-Ray daemon address).
    pub fn ports(&self) -> flint_sandbox::NamespacePorts {
        flint_sandbox::NamespacePorts {
            tcp: self.forwards.iter().map(|f| f.inside_port).collect(),
            udp: vec![XRAY_DAEMON_PORT],
            dns: true,
        }
    }
}

/// Rewrites endpoints on the host's loopback (which an isolated environment cannot reach) to
/// forwarders at `169.254.100.1`, keeping their port where it is free. Other endpoints (another
/// machine, real AWS) are reached through the environment's outbound route, unchanged.
pub(crate) fn endpoints_in_namespace(vars: &[(String, String)]) -> NamespaceEndpoints {
    let mut out = NamespaceEndpoints::default();
    for (name, value) in vars {
        let Some(url) = LoopbackUrl::parse(value) else {
            out.vars.push((name.clone(), value.clone()));
            continue;
        };
        let port = match out.forwards.iter().find(|f| f.target == url.target) {
            Some(f) => f.inside_port,
            None => {
                let taken = |p: u16| {
                    RESERVED_PORTS.contains(&p) || out.forwards.iter().any(|f| f.inside_port == p)
                };
                let mut port = url.target.port();
                if taken(port) {
                    port = (FIRST_SPARE_PORT..u16::MAX)
                        .find(|p| !taken(*p))
                        .unwrap_or(0);
                }
                out.forwards.push(EndpointForward {
                    inside_port: port,
                    target: url.target,
                });
                port
            }
        };
        out.vars.push((
            name.clone(),
            format!(
                "{}://{}:{port}{}",
                url.scheme,
                flint_sandbox::NAMESPACE_HOST,
                url.rest
            ),
        ));
    }
    out
}

/// An `http(s)://` URL whose host is the local machine's loopback.
struct LoopbackUrl<'a> {
    scheme: &'a str,
    target: SocketAddr,
    /// Path, query and fragment, as given.
    rest: &'a str,
}

impl<'a> LoopbackUrl<'a> {
    fn parse(url: &'a str) -> Option<Self> {
        let (scheme, after) = url.split_once("://")?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        if authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().ok()?),
            _ => (authority, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST.into()
        } else {
            host.parse().ok()?
        };
        ip.is_loopback().then_some(LoopbackUrl {
            scheme,
            target: SocketAddr::new(ip, port),
            rest,
        })
    }
}

/// `listener`, opened in an environment's namespace, as a tokio listener; `None` (with a warning
/// that it cannot `what`) when the runtime refuses it.
pub(crate) fn tokio_tcp(
    listener: std::net::TcpListener,
    what: &str,
) -> Option<tokio::net::TcpListener> {
    match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("cannot {what}: {e}");
            None
        }
    }
}

/// The UDP counterpart of [`tokio_tcp`].
pub(crate) fn tokio_udp(socket: std::net::UdpSocket, what: &str) -> Option<tokio::net::UdpSocket> {
    match socket
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UdpSocket::from_std(socket))
    {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot {what}: {e}");
            None
        }
    }
}

/// Forwards each connection made to `listener` (in an environment's namespace) to `target` on
/// the host, until aborted (the environment ended: its open connections end too).
pub(crate) fn forward(
    listener: std::net::TcpListener,
    target: SocketAddr,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let Some(listener) = tokio_tcp(
            listener,
            &format!("forward to {target} from an environment"),
        ) else {
            return;
        };
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (mut inside, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("forwarder to {target}: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            connections.spawn(async move {
                match tokio::net::TcpStream::connect(target).await {
                    Ok(mut outside) => {
                        let _ = inside.set_nodelay(true);
                        let _ = outside.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                    }
                    // The function sees its connection closed, as if the service were down.
                    Err(e) => tracing::debug!("forwarder: cannot connect to {target}: {e}"),
                }
            });
        }
    })
    .abort_handle()
}

/// Takes the UDP datagrams sent to the X-Ray daemon's address and keeps the segments in them
/// with the function's (`traces`, see `xray.rs`).
pub(crate) fn accept_xray_segments(
    socket: std::net::UdpSocket,
    traces: Arc<crate::xray::TraceSink>,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let Some(socket) = tokio_udp(socket, "serve the X-Ray daemon address") else {
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = socket.recv(&mut buf).await {
            match crate::xray::datagram_document(&buf[..n]) {
                Some(document) => {
                    if let Err(e) = traces.keep(document) {
                        tracing::warn!("cannot keep an X-Ray segment: {e}");
                    }
                }
                None => tracing::debug!("ignored a datagram of {n} bytes at the X-Ray address"),
            }
        }
    })
    .abort_handle()
}

/// The environment a request came from, added to every request that arrives on the listener in
/// that environment's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCaller {
    pub account: String,
    /// The access key issued to this environment: the only one its requests may carry.
    pub access_key_id: String,
}

/// Serves Flint's Lambda API on a listener inside one environment's namespace, for requests made
/// as `caller`; the returned handle stops it (when the environment ends).
pub type ServeApiInNamespace =
    Arc<dyn Fn(std::net::TcpListener, SandboxCaller) -> tokio::task::AbortHandle + Send + Sync>;

/// One environment's credentials (what an STS `AssumeRole` of its execution role would give).
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// The function's account: what requests signed with these credentials act in.
    pub account: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_key_id", &self.access_key_id)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

pub use flint_spec::RoleSession;

/// What [`RoleCredentials::assume`] returns: the session, or why STS did not give one.
pub type RoleFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RoleSession, String>> + Send + 'a>>;

/// Where environments get their execution role's credentials from (`flint serve
/// --function-credentials assume-role`: an STS `AssumeRole` through Flint's outbound connection).
/// Without one, Flint issues credentials of its own, good for its own API only.
pub trait RoleCredentials: Send + Sync {
    /// A session of `role_arn` named `session_name`, for a function in `region`.
    fn assume<'a>(
        &'a self,
        role_arn: &'a str,
        session_name: &'a str,
        region: &'a str,
    ) -> RoleFuture<'a>;
}

/// The session name Lambda gives its `AssumeRole` of a function's role: the function's name, or
/// `NAME@lambda_function` for a one-character name (STS wants at least two; recorded by
/// LocalStack's `test_assume_role`).
pub fn role_session_name(function_name: &str) -> String {
    if function_name.chars().count() < 2 {
        format!("{function_name}@lambda_function")
    } else {
        function_name.to_string()
    }
}

/// The credentials issued to live environments, by access key id. Looked up by the API for every
/// request signed with an `ASIA` key (a read lock, no allocation).
#[derive(Debug, Clone, Default)]
pub struct IssuedCredentials {
    by_key: Arc<RwLock<HashMap<String, Issued>>>,
}

impl IssuedCredentials {
    /// New random credentials for an environment of `account`.
    pub(crate) fn issue(&self, account: &str) -> Issued {
        const KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET_CHARS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let pick = |set: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| set[rand::random::<usize>() % set.len()] as char)
                .collect()
        };
        let issued = Issued {
            access_key_id: format!("ASIA{}", pick(KEY_CHARS, 16)),
            secret_access_key: pick(SECRET_CHARS, 40),
            session_token: format!("IQoJb3JpZ2luX2Vj{}", pick(SECRET_CHARS, 300)),
            account: account.to_string(),
        };
        self.by_key
            .write()
            .insert(issued.access_key_id.clone(), issued.clone());
        issued
    }

    /// Records credentials an environment got elsewhere (its execution role's STS session), so
    /// that its requests to Flint's API are verified and act in `account`.
    pub(crate) fn register(&self, session: RoleSession, account: &str) -> Issued {
        let issued = Issued {
            access_key_id: session.access_key_id,
            secret_access_key: session.secret_access_key,
            session_token: session.session_token,
            account: account.to_string(),
        };
        self.by_key
            .write()
            .insert(issued.access_key_id.clone(), issued.clone());
        issued
    }

    /// Forgets an environment's credentials (it ended).
    pub(crate) fn revoke(&self, access_key_id: &str) {
        self.by_key.write().remove(access_key_id);
    }

    /// The credentials issued under `access_key_id`, if an environment holds them.
    pub fn get(&self, access_key_id: &str) -> Option<Issued> {
        self.by_key.read().get(access_key_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn loopback_endpoints_become_forwarders_at_the_namespace_address() {
        let ns = endpoints_in_namespace(&vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_SQS", "http://localhost:5000/"),
            ("AWS_ENDPOINT_URL_S3", "https://[::1]:9000/path?x=1"),
            ("AWS_ENDPOINT_URL_SNS", "http://127.0.0.2"),
            (
                "AWS_ENDPOINT_URL_STS",
                "https://sts.us-east-1.amazonaws.com",
            ),
            ("AWS_ENDPOINT_URL_KINESIS", "http://192.0.2.9:4567"),
            ("AWS_ENDPOINT_URL_SES", "http://user@127.0.0.1:1"),
        ]));
        assert_eq!(
            ns.vars,
            vars(&[
                ("AWS_ENDPOINT_URL", "http://169.254.100.1:5000"),
                ("AWS_ENDPOINT_URL_SQS", "http://169.254.100.1:5000/"),
                ("AWS_ENDPOINT_URL_S3", "https://169.254.100.1:9100/path?x=1"),
                ("AWS_ENDPOINT_URL_SNS", "http://169.254.100.1:80"),
                (
                    "AWS_ENDPOINT_URL_STS",
                    "https://sts.us-east-1.amazonaws.com"
                ),
                ("AWS_ENDPOINT_URL_KINESIS", "http://192.0.2.9:4567"),
                ("AWS_ENDPOINT_URL_SES", "http://user@127.0.0.1:1"),
            ])
        );
        assert_eq!(
            ns.forwards,
            vec![
                EndpointForward {
                    inside_port: 5000,
                    target: "127.0.0.1:5000".parse().unwrap()
                },
                EndpointForward {
                    inside_port: 9100,
                    target: "[::1]:9000".parse().unwrap()
                },
                EndpointForward {
                    inside_port: 80,
                    target: "127.0.0.2:80".parse().unwrap()
                },
            ]
        );
        assert_eq!(ns.ports().tcp, vec![5000, 9100, 80]);
        assert_eq!(ns.ports().udp, vec![XRAY_DAEMON_PORT]);
    }

    #[test]
    fn the_role_session_is_named_after_the_function_as_lambda_names_it() {
        assert_eq!(role_session_name("u"), "u@lambda_function");
        assert_eq!(role_session_name("zz"), "zz");
        let long = "n".repeat(64);
        assert_eq!(role_session_name(&long), long);
    }

    #[test]
    fn registered_role_sessions_act_in_the_functions_account_until_revoked() {
        let registry = IssuedCredentials::default();
        let issued = registry.register(
            RoleSession {
                access_key_id: "ASIAFROMSTS".into(),
                secret_access_key: "secret".into(),
                session_token: "token".into(),
                expiration: None,
            },
            "111122223333",
        );
        let found = registry.get("ASIAFROMSTS").expect("registered");
        assert_eq!(found, issued);
        assert_eq!(found.account, "111122223333");
        assert_eq!(found.secret_access_key, "secret");
        registry.revoke("ASIAFROMSTS");
        assert!(registry.get("ASIAFROMSTS").is_none());
    }

    #[test]
    fn issued_credentials_look_like_sts_ones_and_end_with_their_environment() {
        let issued = IssuedCredentials::default();
        let a = issued.issue("111122223333");
        assert!(a.access_key_id.starts_with("ASIA") && a.access_key_id.len() == 20);
        assert_eq!(a.secret_access_key.len(), 40);
        assert!(a.session_token.len() > 100);
        assert_eq!(issued.get(&a.access_key_id).as_ref(), Some(&a));
        let b = issued.issue("111122223333");
        assert_ne!(a.access_key_id, b.access_key_id);
        issued.revoke(&a.access_key_id);
        assert!(issued.get(&a.access_key_id).is_none());
        assert!(issued.get(&b.access_key_id).is_some());
        assert!(!format!("{b:?}").contains(&b.secret_access_key));
    }
}
