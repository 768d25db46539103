//! Outbound network access for sandboxes with a network namespace of their own: a veth pair per
//! sandbox and NAT on the host (the kernel's forwarding path; no process per sandbox, nothing in
//! userspace on the data path).
//!
//! - Host-wide, while Flint runs ([`HostNat`], root only): one nftables table `inet flint_<pid>`
//!   that masquerades the sandboxes' addresses ([`FunctionSubnet`]) and drops what a sandbox must not do:
//!   reach the host itself (any of its addresses, loopback services included), another sandbox,
//!   link-local addresses (a cloud's instance metadata service), or be reached from outside.
//!   `net.ipv4.ip_forward` is turned on if it was off — then the table also drops every other
//!   forwarded packet, so the host forwards nothing it did not before — and turned off again when
//!   the last Flint leaves. The table is deleted at shutdown (and a dead Flint's at the next start).
//! - Per sandbox, by its supervisor before the sandbox counts as prepared ([`connect`]): a veth
//!   pair `flintv<n>` (host side) / `eth0` (in the sandbox), the /31 pair of addresses `n` stands
//!   for, and the sandbox's default route. The interface name is what claims `n`, atomically and
//!   across Flint processes; the pair disappears with the sandbox's namespace.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the sandboxes' addresses come from (`--function-subnet`): one /31 per sandbox (host side
/// even, sandbox side odd). An IPv4 network with a prefix of 16 to 24 bits (32,768 to 128
/// pairs); the default is `10.201.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FunctionSubnet {
    base: Ipv4Addr,
    prefix: u8,
}

impl FunctionSubnet {
    pub const DEFAULT: FunctionSubnet = FunctionSubnet {
        base: Ipv4Addr::new(10, 201, 0, 0),
        prefix: 16,
    };
    /// The prefix lengths allowed: enough pairs for a busy host, room for Flint's attempts.
    pub const PREFIXES: std::ops::RangeInclusive<u8> = 16..=24;

    /// How many /31 pairs the subnet holds.
    fn pairs(&self) -> u32 {
        1 << (32 - u32::from(self.prefix) - 1)
    }

    /// Whether `ip` is one of the subnet's addresses.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        u32::from(ip) & mask == u32::from(self.base)
    }
}

impl Default for FunctionSubnet {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for FunctionSubnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl std::str::FromStr for FunctionSubnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR block (e.g. 10.201.0.0/16)"))?;
        let base: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv4 address (only IPv4 is routed out)"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{prefix:?} is not a prefix length"))?;
        if !Self::PREFIXES.contains(&prefix) {
            return Err(format!(
                "the prefix must be /{} to /{} (from 32,768 to 128 environments' address pairs), not /{prefix}",
                Self::PREFIXES.start(),
                Self::PREFIXES.end()
            ));
        }
        let subnet = FunctionSubnet { base, prefix };
        let mask = u32::MAX << (32 - u32::from(prefix));
        if u32::from(base) & !mask != 0 {
            return Err(format!(
                "{s} has host bits set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(base) & mask)
            ));
        }
        if base.is_loopback()
            || base.is_link_local()
            || base.is_multicast()
            || base.is_broadcast()
            || base.is_unspecified()
            || u32::from(base) >= 0xF000_0000
        {
            return Err(format!(
                "{s} is not a network environments can use (loopback, link-local, multicast or reserved)"
            ));
        }
        Ok(subnet)
    }
}

/// Host-side interface names: this prefix and the pair's number (`flintv12345` fits IFNAMSIZ).
const IFACE_PREFIX: &str = "flintv";
/// Attempts at a free pair number before giving up.
const ATTEMPTS: u32 = 64;

/// How the supervisor connects a sandbox (sent in the prepare request).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct VethPlan {
    /// iproute2's `ip` (creating a veth pair needs netlink; `ip` is the maintained client).
    pub ip_program: PathBuf,
    /// Where the pair's addresses come from.
    pub subnet: FunctionSubnet,
}

/// Addresses of pair `n`: (host side, sandbox side).
fn pair_addresses(subnet: &FunctionSubnet, n: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(subnet.base) + 2 * (n % subnet.pairs());
    (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
}

const PAIR_NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 254);

/// In the supervisor (host namespaces, root): gives the sandbox whose PID 1 is `pid` its veth
/// pair, addresses and default route. Returns the host-side interface's name.
pub(crate) fn connect(pid: i32, plan: &VethPlan) -> Result<String, String> {
    // Spread the starting points so concurrent supervisors (and Flints) rarely collide.
    let pairs = plan.subnet.pairs();
    let start = (pid as u32).wrapping_mul(2_654_435_761) % pairs;
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS {
        let n = (start + attempt) % pairs;
        let name = format!("{IFACE_PREFIX}{n}");
        let out = Command::new(&plan.ip_program)
            .args(["link", "add", &name, "type", "veth", "peer", "name", "eth0"])
            .args(["netns", &pid.to_string()])
            .env_clear()
            .output()
            .map_err(|e| format!("{}: {e}", plan.ip_program.display()))?;
        if !out.status.success() {
            last_error = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if last_error.contains("File exists") {
                continue;
            }
            return Err(format!("ip link add {name}: {last_error}"));
        }
        let (host, inside) = pair_addresses(&plan.subnet, n);
        configure(pid, &name, host, inside).map_err(|e| {
            // Gone with the namespace anyway; removing it now frees the number at once.
            let _ = Command::new(&plan.ip_program)
                .args(["link", "del", &name])
                .env_clear()
                .output();
            format!("veth {name}: {e}")
        })?;
        return Ok(name);
    }
    Err(format!(
        "no free veth pair after {ATTEMPTS} attempts ({last_error})"
    ))
}

fn configure(pid: i32, host_if: &str, host: Ipv4Addr, inside: Ipv4Addr) -> io::Result<()> {
    use crate::netns::{add_address, add_default_route, interface_up, socket};
    let sock = socket(libc::SOCK_DGRAM)?;
    add_address(&sock, host_if, host, PAIR_NETMASK)?;
    interface_up(&sock, host_if)?;
    drop(sock);
    // The sandbox's side, from inside its namespace (the supervisor is single-threaded: it can
    // enter and leave it).
    let ours = std::fs::File::open("/proc/self/ns/net")?;
    let theirs = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    nix::sched::setns(theirs.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    let inside_result = (|| {
        let sock = socket(libc::SOCK_DGRAM)?;
        add_address(&sock, "eth0", inside, PAIR_NETMASK)?;
        interface_up(&sock, "eth0")?;
        add_default_route(&sock, host)
    })();
    nix::sched::setns(ours.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    inside_result
}

/// The host-wide part of outbound access, held for as long as Flint runs.
#[derive(Debug)]
pub(crate) struct HostNat {
    nft: PathBuf,
    table: String,
    /// `ip_forward` was off and this Flint turned it on.
    restore_forward: bool,
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const TABLE_PREFIX: &str = "flint_";

impl HostNat {
    /// Sets up NAT and the filter; the `VethPlan` sandboxes are then prepared with. Fails (saying
    /// why) where it cannot: not root, `ip` or `nft` missing, nftables refused.
    pub fn enable(subnet: FunctionSubnet) -> Result<(HostNat, VethPlan), String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("Flint is not root (a veth pair and NAT need CAP_NET_ADMIN)".into());
        }
        let ip_program = crate::ephemeral_storage::find_program("ip")
            .ok_or("iproute2's `ip` is not installed")?;
        let nft = crate::ephemeral_storage::find_program("nft")
            .ok_or("`nft` (Debian package nftables) is not installed")?;
        let table = format!("{TABLE_PREFIX}{}", std::process::id());
        let forward_on = std::fs::read_to_string(IP_FORWARD)
            .map(|v| v.trim() == "1")
            .map_err(|e| format!("{IP_FORWARD}: {e}"))?;
        // On, but by another (or a dead) Flint, which leaves turning it off to the last one.
        let forward_was_on = forward_on
            && !flint_tables(&nft)
                .iter()
                .any(|t| forwards_only_ours(&nft, t));
        // After the look at their tables: a dead Flint's that turned forwarding on counts.
        remove_stale_tables(&nft);
        run_nft(&nft, &ruleset(&table, &subnet, !forward_was_on))?;
        let nat = HostNat {
            nft,
            table,
            restore_forward: !forward_was_on,
        };
        if !forward_on {
            // Dropping `nat` deletes the table again.
            std::fs::write(IP_FORWARD, "1").map_err(|e| format!("{IP_FORWARD}: {e}"))?;
        }
        Ok((nat, VethPlan { ip_program, subnet }))
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for HostNat {
    fn drop(&mut self) {
        if let Err(e) = run_nft(&self.nft, &format!("delete table inet {}\n", self.table)) {
            tracing::warn!("cannot remove nftables table {}: {e}", self.table);
        }
        if self.restore_forward && flint_tables(&self.nft).is_empty() {
            let _ = std::fs::write(IP_FORWARD, "0");
        }
    }
}

/// The table: NAT for the sandboxes, and what they may not reach.
fn ruleset(table: &str, subnet: &FunctionSubnet, forward_only_ours: bool) -> String {
    let net = subnet.to_string();
    let ours = format!("\"{IFACE_PREFIX}*\"");
    // Only when this Flint turned forwarding on: nothing else is forwarded because of it.
    let others = if forward_only_ours {
        format!("\t\tiifname != {ours} oifname != {ours} drop\n")
    } else {
        String::new()
    };
    format!(
        "table inet {table} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority -10; policy accept;\n\
         \t\tiifname {ours} drop\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority -10; policy accept;\n\
         \t\toifname {ours} ct state new drop\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority -10; policy accept;\n\
         \t\tiifname {ours} oifname {ours} drop\n\
         \t\tiifname {ours} meta nfproto ipv6 drop\n\
         \t\tiifname {ours} fib saddr . iif oif missing drop\n\
         \t\tiifname {ours} ip daddr 169.254.0.0/16 drop\n\
         \t\toifname {ours} ct state established,related accept\n\
         \t\toifname {ours} drop\n\
         {others}\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority 100; policy accept;\n\
         \t\tip saddr {net} oifname != {ours} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

fn run_nft(nft: &Path, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", nft.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Names of the Flint tables in nftables (`flint_<pid>`).
fn flint_tables(nft: &Path) -> Vec<String> {
    let Ok(out) = Command::new(nft).args(["list", "tables"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("table inet "))
        .filter(|t| t.starts_with(TABLE_PREFIX))
        .map(str::to_string)
        .collect()
}

/// Whether `table` is one a Flint made after turning `ip_forward` on itself.
fn forwards_only_ours(nft: &Path, table: &str) -> bool {
    Command::new(nft)
        .args(["list", "table", "inet", table])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains(FORWARD_ONLY_OURS_MARK))
        .unwrap_or(false)
}

/// What [`ruleset`] writes, and nft lists, when the table forwards only the sandboxes' traffic.
const FORWARD_ONLY_OURS_MARK: &str = "iifname != \"flintv*\" oifname != \"flintv*\" drop";

/// Tables of Flints that died without removing theirs.
fn remove_stale_tables(nft: &Path) {
    for table in flint_tables(nft) {
        let Some(pid) = table.strip_prefix(TABLE_PREFIX) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            tracing::info!("removing nftables table {table} of a Flint that is gone");
            let _ = run_nft(nft, &format!("delete table inet {table}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pair_is_a_31_inside_the_subnet() {
        let subnet = FunctionSubnet::DEFAULT;
        let pair_addresses = |n| super::pair_addresses(&subnet, n);
        const PAIRS: u32 = 1 << 15;
        assert_eq!(subnet.pairs(), PAIRS);
        assert_eq!(
            pair_addresses(0),
            (Ipv4Addr::new(10, 201, 0, 0), Ipv4Addr::new(10, 201, 0, 1))
        );
        assert_eq!(
            pair_addresses(200),
            (
                Ipv4Addr::new(10, 201, 1, 144),
                Ipv4Addr::new(10, 201, 1, 145)
            )
        );
        assert_eq!(
            pair_addresses(PAIRS - 1).1,
            Ipv4Addr::new(10, 201, 255, 255)
        );
        assert_eq!(pair_addresses(PAIRS), pair_addresses(0));
        assert!(format!("{IFACE_PREFIX}{}", PAIRS - 1).len() < libc::IFNAMSIZ);
    }

    #[test]
    fn the_ruleset_forwards_only_ours_when_it_turned_forwarding_on() {
        let subnet = FunctionSubnet::DEFAULT;
        let with = ruleset("flint_1", &subnet, true);
        assert!(with.contains(FORWARD_ONLY_OURS_MARK));
        assert!(with.contains("ip saddr 10.201.0.0/16 oifname != \"flintv*\" masquerade"));
        assert!(with.contains("ip daddr 169.254.0.0/16 drop"));
        // Spoofed sources are dropped by a reverse-path check, not by the subnet: another
        // Flint's sandboxes (another subnet, the same interface names) pass this table.
        assert!(with.contains("iifname \"flintv*\" fib saddr . iif oif missing drop"));
        assert!(!with.contains("saddr != "));
        let without = ruleset("flint_1", &subnet, false);
        assert!(!without.contains("iifname != "));
        let moved: FunctionSubnet = "192.168.128.0/20".parse().unwrap();
        assert!(ruleset("flint_1", &moved, true)
            .contains("ip saddr 192.168.128.0/20 oifname != \"flintv*\" masquerade"));
    }

    #[test]
    fn a_moved_subnet_hands_out_its_own_pairs() {
        let subnet: FunctionSubnet = "172.30.4.0/24".parse().unwrap();
        assert_eq!(subnet.pairs(), 128);
        assert_eq!(
            pair_addresses(&subnet, 1),
            (Ipv4Addr::new(172, 30, 4, 2), Ipv4Addr::new(172, 30, 4, 3))
        );
        assert_eq!(
            pair_addresses(&subnet, 127).1,
            Ipv4Addr::new(172, 30, 4, 255)
        );
        assert_eq!(pair_addresses(&subnet, 128), pair_addresses(&subnet, 0));
        assert!(subnet.contains(Ipv4Addr::new(172, 30, 4, 77)));
        assert!(!subnet.contains(Ipv4Addr::new(172, 30, 5, 1)));
        assert_eq!(subnet.to_string(), "172.30.4.0/24");
    }

    #[test]
    fn subnets_are_validated() {
        assert_eq!(
            "10.201.0.0/16".parse::<FunctionSubnet>(),
            Ok(FunctionSubnet::DEFAULT)
        );
        for (bad, says) in [
            ("10.201.0.0", "not a CIDR block"),
            ("fd00::/64", "not an IPv4 address"),
            ("10.0.0.0/8", "must be /16 to /24"),
            ("10.0.0.0/25", "must be /16 to /24"),
            ("10.0.0.0/x", "not a prefix length"),
            (
                "10.201.3.0/16",
                "host bits set (did you mean 10.201.0.0/16?)",
            ),
            ("127.0.0.0/16", "not a network environments can use"),
            ("169.254.0.0/16", "not a network environments can use"),
            ("224.1.0.0/16", "not a network environments can use"),
        ] {
            let err = bad.parse::<FunctionSubnet>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
