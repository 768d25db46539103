//! What a function can reach, and as whom it calls Flint. With `FunctionNetwork::Isolated` (the
//! default of `flint serve`) every environment has a network namespace of its own: the Runtime
//! API and Flint's Lambda API are listeners inside it (169.254.100.1:9001 and :9000), nothing of
//! the host's loopback is reachable. Each environment gets temporary credentials bound to its
//! function's account ([`IssuedCredentials`]); the API verifies them in every mode, and a request
//! through an environment's own listener acts as that environment ([`SandboxCaller`]).

use std::collections::HashMap;
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
