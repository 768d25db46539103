//! DNS for isolated environments. An environment's network namespace has no host loopback, so a
//! host whose resolver listens there (systemd-resolved's `127.0.0.53`, dnsmasq on `127.0.0.1`)
//! would leave its functions unable to resolve any name; a link-local one (a cloud's
//! `169.254.169.253`) is dropped by the outbound filter, and without outbound access (Flint not
//! root) no nameserver is reachable at all. AWS gives its environments a link-local resolver;
//! Flint does the same where needed: a relay at `169.254.100.1:53` (UDP and TCP) in every isolated
//! environment, passing queries as they are (no DNS parsing) to the host's nameservers.
//!
//! The environment's `resolv.conf` ([`HostDns::environment_conf`], bound in every isolated
//! sandbox) is the host's own when its nameservers are reachable through the environment's
//! outbound route anyway, else `nameserver 169.254.100.1` with the host's `search`, `domain`,
//! `options` and `sortlist` lines. It follows the host's file: checked (a `stat`, at most once a
//! second) at every environment start and relayed query, rewritten in place when it changes, so
//! running environments see the change too.
//!
//! Limits, per environment: [`QUERIES_PER_SECOND`] UDP queries a second (burst
//! [`QUERY_BURST`]), [`MAX_QUERIES_IN_FLIGHT`] awaiting an answer, queries of at most
//! [`MAX_QUERY_BYTES`]; [`MAX_TCP_CONNECTIONS`] TCP connections at once, each for at most
//! [`TCP_LIFETIME`] and [`MAX_TCP_BYTES_IN`] from the function. Queries over a limit are dropped
//! (the stub resolver retries, as with an overloaded server).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// UDP queries an environment may relay per second, sustained.
pub(crate) const QUERIES_PER_SECOND: f64 = 200.0;
/// UDP queries an environment may relay at once after a quiet spell.
pub(crate) const QUERY_BURST: f64 = 400.0;
/// UDP queries of one environment awaiting an answer at once.
pub(crate) const MAX_QUERIES_IN_FLIGHT: usize = 64;
/// The largest UDP query relayed (EDNS0 queries are well under this; a DNS header is 12 bytes).
pub(crate) const MAX_QUERY_BYTES: usize = 4096;
const MIN_QUERY_BYTES: usize = 12;
/// How long one nameserver has to answer before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// TCP connections of one environment relayed at once.
pub(crate) const MAX_TCP_CONNECTIONS: usize = 4;
/// How long a relayed TCP connection may last.
pub(crate) const TCP_LIFETIME: Duration = Duration::from_secs(30);
/// Bytes a function may send on one relayed TCP connection (a few hundred queries).
pub(crate) const MAX_TCP_BYTES_IN: u64 = 64 * 1024;
/// Bytes relayed back on one TCP connection (answers up to 64 KiB each).
const MAX_TCP_BYTES_OUT: u64 = 4 * 1024 * 1024;
/// How often the host's file is looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);
/// glibc uses the first three nameservers.
const MAX_NAMESERVERS: usize = 3;

/// The host's resolver configuration, as isolated environments get it.
#[derive(Debug)]
pub(crate) struct HostDns {
    /// The host's `resolv.conf` (`/etc/resolv.conf`, or `--resolv-conf`).
    host_conf: PathBuf,
    /// The environments' `resolv.conf`, written here.
    environment_conf: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    checked: Option<Instant>,
    /// The host file's identity and modification time when last read.
    stamp: Option<(u64, u64, Option<SystemTime>)>,
    outbound: bool,
    upstreams: Arc<[SocketAddr]>,
    written: Option<String>,
}

/// What a `resolv.conf` says that matters here.
#[derive(Debug, Default, PartialEq, Eq)]
struct ResolvConf {
    nameservers: Vec<IpAddr>,
    /// `search`, `domain`, `options` and `sortlist` lines, as written.
    kept: Vec<String>,
}

impl ResolvConf {
    fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // An IPv6 address may carry a zone (`fe80::1%eth0`): the zone is the host's.
                    let ip = words.next().and_then(|w| w.split('%').next()?.parse().ok());
                    if let Some(ip) = ip {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search" | "domain" | "options" | "sortlist") => {
                    conf.kept.push(line.trim().to_string())
                }
                _ => {}
            }
        }
        conf.nameservers.truncate(MAX_NAMESERVERS);
        conf
    }

    /// Where queries go: the nameservers, or the C library's default (the local machine).
    fn upstreams(&self) -> Vec<SocketAddr> {
        if self.nameservers.is_empty() {
            return vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))];
        }
        self.nameservers
            .iter()
            .map(|ip| SocketAddr::new(*ip, 53))
            .collect()
    }

    /// Whether an environment reaches every nameserver through its own route: IPv4 (there is no
    /// IPv6 route out), not the host's loopback, not link-local (the outbound filter drops it).
    fn reachable_from_environments(&self, outbound: bool) -> bool {
        outbound
            && !self.nameservers.is_empty()
            && self.nameservers.iter().all(|ip| match ip {
                IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
                IpAddr::V6(_) => false,
            })
    }

    /// The environments' file when the relay answers for the host's nameservers.
    fn through_relay(&self, upstreams: &[SocketAddr]) -> String {
        let names: Vec<String> = upstreams.iter().map(|a| a.ip().to_string()).collect();
        let mut out = format!(
            "# Flint relays DNS from here to this host's nameservers ({})\nnameserver {}\n",
            names.join(", "),
            flint_sandbox::NAMESPACE_HOST
        );
        for line in &self.kept {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

impl HostDns {
    /// Reads the host's file and writes the environments' (`environment_conf`).
    pub(crate) fn new(
        host_conf: PathBuf,
        environment_conf: PathBuf,
        outbound: bool,
    ) -> std::io::Result<Self> {
        let dns = HostDns {
            host_conf,
            environment_conf,
            state: Mutex::new(State::default()),
        };
        dns.refresh_now(&mut dns.state.lock(), outbound)?;
        Ok(dns)
    }

    /// The file bound at `/etc/resolv.conf` in isolated environments.
    pub(crate) fn environment_conf(&self) -> &Path {
        &self.environment_conf
    }

    /// Follows the host's file and whether environments have outbound access (at an
    /// environment's start); cheap when nothing changed.
    pub(crate) fn refresh(&self, outbound: bool) {
        let mut state = self.state.lock();
        if state.outbound == outbound && state.checked.is_some_and(|at| at.elapsed() < RECHECK) {
            return;
        }
        if let Err(e) = self.refresh_now(&mut state, outbound) {
            tracing::warn!(
                "cannot update isolated environments' resolv.conf ({}): {e}",
                self.environment_conf.display()
            );
        }
    }

    /// The nameservers queries go to now.
    pub(crate) fn upstreams(&self) -> Arc<[SocketAddr]> {
        let outbound = self.state.lock().outbound;
        self.refresh(outbound);
        self.state.lock().upstreams.clone()
    }

    fn refresh_now(&self, state: &mut State, outbound: bool) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        state.checked = Some(Instant::now());
        let (text, stamp) = match std::fs::metadata(&self.host_conf) {
            Ok(meta) => {
                let stamp = (meta.dev(), meta.ino(), meta.modified().ok());
                if state.stamp == Some(stamp) && state.outbound == outbound {
                    return Ok(());
                }
                (std::fs::read_to_string(&self.host_conf)?, Some(stamp))
            }
            // No file: the C library's defaults (the local machine's resolver).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), None),
            Err(e) => return Err(e),
        };
        let conf = ResolvConf::parse(&text);
        let upstreams = conf.upstreams();
        let content = if conf.reachable_from_environments(outbound) {
            text
        } else {
            conf.through_relay(&upstreams)
        };
        if state.written.as_deref() != Some(content.as_str()) {
            write_in_place(&self.environment_conf, content.as_bytes())?;
            tracing::info!(
                "isolated functions resolve names {}",
                if content.contains(&format!("nameserver {}", flint_sandbox::NAMESPACE_HOST)) {
                    format!(
                        "through Flint's relay at {}:53 (to {})",
                        flint_sandbox::NAMESPACE_HOST,
                        upstreams
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    format!("with {}'s nameservers", self.host_conf.display())
                }
            );
            state.written = Some(content);
        }
        state.stamp = stamp;
        state.outbound = outbound;
        state.upstreams = upstreams.into();
        Ok(())
    }
}

/// Rewrites a file keeping its inode: sandboxes have it bind-mounted, and see the new content.
fn write_in_place(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(content)?;
    // The mode of a file made before (umask) or by an older Flint.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
}

/// A token bucket: `rate` a second, at most `burst` saved up.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full() -> Self {
        Bucket {
            tokens: QUERY_BURST,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * QUERIES_PER_SECOND).min(QUERY_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Relays the UDP queries sent to `socket` (at `169.254.100.1:53` in an environment's namespace)
/// until aborted (the environment ended: queries in flight end too).
pub(crate) fn serve_udp(
    socket: std::net::UdpSocket,
    dns: Arc<HostDns>,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let Some(socket) = crate::network::tokio_udp(socket, "serve an environment's DNS relay")
        else {
            return;
        };
        let socket = Arc::new(socket);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_QUERIES_IN_FLIGHT));
        let mut bucket = Bucket::full();
        let mut queries = tokio::task::JoinSet::new();
        // One byte more than the limit tells an oversized query from one that fits.
        let mut buf = vec![0u8; MAX_QUERY_BYTES + 1];
        loop {
            let (n, client) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("DNS relay: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            while queries.try_join_next().is_some() {}
            if !(MIN_QUERY_BYTES..=MAX_QUERY_BYTES).contains(&n) {
                tracing::debug!("DNS relay: dropped a datagram of {n} bytes");
                continue;
            }
            if !bucket.take(Instant::now()) {
                tracing::debug!(
                    "DNS relay: an environment is over {QUERIES_PER_SECOND} queries a second"
                );
                continue;
            }
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                tracing::debug!("DNS relay: {MAX_QUERIES_IN_FLIGHT} queries in flight already");
                continue;
            };
            let query = buf[..n].to_vec();
            let (socket, upstreams) = (socket.clone(), dns.upstreams());
            queries.spawn(async move {
                let _permit = permit;
                if let Some(answer) = ask(&upstreams, &query).await {
                    let _ = socket.send_to(&answer, client).await;
                }
            });
        }
    })
    .abort_handle()
}

/// One query to the nameservers in turn, from a socket of its own; the first answer.
async fn ask(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let local: SocketAddr = match upstream {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let attempt = async {
            let sock = tokio::net::UdpSocket::bind(local).await?;
            sock.connect(upstream).await?;
            sock.send(query).await?;
            let mut answer = vec![0u8; 65_536];
            let n = sock.recv(&mut answer).await?;
            answer.truncate(n);
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            Ok(Ok(answer)) => return Some(answer),
            Ok(Err(e)) => tracing::debug!("DNS relay: {upstream}: {e}"),
            Err(_) => tracing::debug!("DNS relay: {upstream} did not answer"),
        }
    }
    None
}

/// Relays the TCP connections made to `listener` (at `169.254.100.1:53`) to the first nameserver
/// that accepts one, until aborted.
pub(crate) fn serve_tcp(
    listener: std::net::TcpListener,
    dns: Arc<HostDns>,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let Some(listener) =
            crate::network::tokio_tcp(listener, "serve an environment's DNS relay (TCP)")
        else {
            return;
        };
        let open = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (inside, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("DNS relay (TCP): {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            // Over the limit: the connection is closed at once.
            let Ok(permit) = open.clone().try_acquire_owned() else {
                continue;
            };
            let upstreams = dns.upstreams();
            connections.spawn(async move {
                let _permit = permit;
                let _ = tokio::time::timeout(TCP_LIFETIME, relay_tcp(inside, &upstreams)).await;
            });
        }
    })
    .abort_handle()
}

async fn relay_tcp(inside: tokio::net::TcpStream, upstreams: &[SocketAddr]) {
    let mut outside = None;
    for upstream in upstreams {
        match tokio::time::timeout(UPSTREAM_TIMEOUT, tokio::net::TcpStream::connect(upstream)).await
        {
            Ok(Ok(s)) => {
                outside = Some(s);
                break;
            }
            Ok(Err(e)) => tracing::debug!("DNS relay (TCP): {upstream}: {e}"),
            Err(_) => tracing::debug!("DNS relay (TCP): {upstream} did not answer"),
        }
    }
    let Some(outside) = outside else {
        return;
    };
    let (inside_read, mut inside_write) = inside.into_split();
    let (outside_read, mut outside_write) = outside.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut inside_read.take(MAX_TCP_BYTES_IN), &mut outside_write).await;
        let _ = outside_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut outside_read.take(MAX_TCP_BYTES_OUT), &mut inside_write).await;
        let _ = inside_write.shutdown().await;
    };
    tokio::join!(up, down);
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOLVED: &str = "# This is /run/systemd/resolve/stub-resolv.conf\n\
                            nameserver 127.0.0.53\n\
                            options edns0 trust-ad\n\
                            search corp.example.com\n";

    #[test]
    fn a_loopback_resolver_goes_through_the_relay_keeping_search_and_options() {
        let conf = ResolvConf::parse(RESOLVED);
        assert_eq!(conf.nameservers, vec![IpAddr::from([127, 0, 0, 53])]);
        assert!(!conf.reachable_from_environments(true));
        let upstreams = conf.upstreams();
        assert_eq!(upstreams, vec!["127.0.0.53:53".parse().unwrap()]);
        let text = conf.through_relay(&upstreams);
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            vec![
                "nameserver 169.254.100.1",
                "options edns0 trust-ad",
                "search corp.example.com"
            ]
        );
    }

    #[test]
    fn nameservers_on_other_machines_are_kept_when_environments_reach_them() {
        let conf = ResolvConf::parse("nameserver 10.255.255.53\nnameserver 192.0.2.1\n");
        assert!(conf.reachable_from_environments(true));
        // Without outbound access nothing but the relay is reachable.
        assert!(!conf.reachable_from_environments(false));
        for unreachable in [
            "nameserver 169.254.169.253\n",
            "nameserver 10.0.0.2\nnameserver ::1\n",
            "nameserver fe80::1%eth0\n",
            "# nothing\n",
        ] {
            assert!(
                !ResolvConf::parse(unreachable).reachable_from_environments(true),
                "{unreachable}"
            );
        }
        assert_eq!(
            ResolvConf::parse("nameserver fe80::1%eth0\n").upstreams(),
            vec!["[fe80::1]:53".parse().unwrap()]
        );
        // No nameserver: the C library asks the local machine.
        assert_eq!(
            ResolvConf::parse("").upstreams(),
            vec!["127.0.0.1:53".parse().unwrap()]
        );
        let four =
            "nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\nnameserver 1.1.1.4\n";
        assert_eq!(ResolvConf::parse(four).nameservers.len(), 3);
    }

    #[test]
    fn the_environments_file_follows_the_host_file_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.conf");
        let env = dir.path().join("env.conf");
        std::fs::write(&host, "nameserver 192.0.2.1\nsearch a.example\n").unwrap();
        let dns = HostDns::new(host.clone(), env.clone(), true).unwrap();
        assert_eq!(
            std::fs::read_to_string(&env).unwrap(),
            "nameserver 192.0.2.1\nsearch a.example\n"
        );
        let inode = std::fs::metadata(&env).unwrap().ino();
        // Outbound access goes: the relay answers instead.
        dns.refresh(false);
        let text = std::fs::read_to_string(&env).unwrap();
        assert!(
            text.contains("nameserver 169.254.100.1\nsearch a.example\n"),
            "{text}"
        );
        assert_eq!(&dns.upstreams()[..], &["192.0.2.1:53".parse().unwrap()]);
        // The host's file changes (a new inode, as an editor or resolvconf writes it).
        std::fs::remove_file(&host).unwrap();
        std::fs::write(&host, "nameserver 127.0.0.53\n").unwrap();
        dns.state.lock().checked = None;
        assert_eq!(&dns.upstreams()[..], &["127.0.0.53:53".parse().unwrap()]);
        assert!(std::fs::read_to_string(&env)
            .unwrap()
            .contains("nameservers (127.0.0.53)"));
        assert_eq!(std::fs::metadata(&env).unwrap().ino(), inode);
        assert_eq!(std::fs::metadata(&env).unwrap().mode() & 0o777, 0o644);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let mut bucket = Bucket::full();
        let start = bucket.last;
        let taken = (0..1000).filter(|_| bucket.take(start)).count();
        assert_eq!(taken, QUERY_BURST as usize);
        let later = start + Duration::from_millis(100);
        let taken = (0..1000).filter(|_| bucket.take(later)).count();
        assert_eq!(taken, (QUERIES_PER_SECOND / 10.0) as usize);
    }

    #[tokio::test]
    async fn queries_are_relayed_as_they_are_and_oversized_ones_dropped() {
        // A stand-in nameserver that answers each datagram with its reverse.
        let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok((n, from)) = upstream.recv_from(&mut buf).await {
                let mut answer = buf[..n].to_vec();
                answer.reverse();
                let _ = upstream.send_to(&answer, from).await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.conf");
        std::fs::write(&host, "nameserver 127.0.0.1\n").unwrap();
        let dns = HostDns::new(host, dir.path().join("env.conf"), false).unwrap();
        dns.state.lock().upstreams = vec![upstream_addr].into();
        dns.state.lock().checked = Some(Instant::now() + Duration::from_secs(3600));
        let relay = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let relay_addr = relay.local_addr().unwrap();
        let task = serve_udp(relay, Arc::new(dns));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(relay_addr).await.unwrap();
        client.send(&[0u8; MAX_QUERY_BYTES + 1]).await.unwrap();
        let query: Vec<u8> = (0u8..40).collect();
        client.send(&query).await.unwrap();
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        // The first answer is the small query's: the oversized one was dropped.
        let mut expected = query.clone();
        expected.reverse();
        assert_eq!(&buf[..n], &expected[..]);
        task.abort();
    }
}
