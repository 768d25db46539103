//! Who is on the other end of a loopback TCP connection: every environment's Runtime API listens
//! on the host's 127.0.0.1, so any function could connect to another's and take its events. The
//! answer comes from the kernel's own tables — the connecting socket's inode (one `sock_diag`
//! netlink lookup by address; `/proc/net/tcp`, which walks the whole hash table, as a fallback),
//! then whether a process of the sandbox's cgroup holds that socket — once per connection
//! (runtimes keep theirs alive across invokes).

use std::net::SocketAddr;
use std::path::Path;

/// True when the socket connected from `peer` to `local` is held by a process listed in
/// `procs_file` (a cgroup's `cgroup.procs`).
pub(crate) fn connected_from(procs_file: &Path, peer: SocketAddr, local: SocketAddr) -> bool {
    let Some(inode) = socket_inode(peer, local) else {
        return false;
    };
    let Ok(procs) = std::fs::read_to_string(procs_file) else {
        return false;
    };
    let wanted = format!("socket:[{inode}]");
    let mut pids: Vec<u32> = procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .collect();
    // The runtime (which makes the connections) is among the first processes of the sandbox;
    // whatever it forks later comes after it.
    pids.sort_unstable();
    let mut budget = MAX_DESCRIPTORS_EXAMINED;
    pids.into_iter().any(|pid| holds(pid, &wanted, &mut budget))
}

/// Descriptors looked at per connection, at most: a function with thousands of processes and
/// descriptors must not make each of its connections cost Flint seconds (past the budget the
/// connection is refused, which only harms that function).
const MAX_DESCRIPTORS_EXAMINED: usize = 4096;

/// Whether process `pid` has a descriptor that links to `wanted` (`socket:[<inode>]`).
fn holds(pid: u32, wanted: &str, budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    for fd in fds.flatten() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted) {
            return true;
        }
    }
    false
}

/// The inode of the socket whose local address is `from` and remote address is `to`.
fn socket_inode(from: SocketAddr, to: SocketAddr) -> Option<u64> {
    diag_inode(from, to).or_else(|| proc_net_inode(from, to))
}

/// `SOCK_DIAG_BY_FAMILY` for exactly one socket (no dump): a hash lookup in the kernel.
fn diag_inode(from: SocketAddr, to: SocketAddr) -> Option<u64> {
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const HDR: usize = 16;
    // inet_diag_req_v2: family, protocol, ext, pad, states (u32), then inet_diag_sockid:
    // sport, dport (be16), src[4], dst[4] (be32), if (u32), cookie[2] (u32).
    const REQ: usize = 8 + 4 + 32 + 4 + 8;
    let (family, src, dst) = match (from, to) {
        (SocketAddr::V4(f), SocketAddr::V4(t)) => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s[..4].copy_from_slice(&f.ip().octets());
            d[..4].copy_from_slice(&t.ip().octets());
            (libc::AF_INET as u8, s, d)
        }
        (SocketAddr::V6(f), SocketAddr::V6(t)) => {
            (libc::AF_INET6 as u8, f.ip().octets(), t.ip().octets())
        }
        _ => return None,
    };
    let mut msg = [0u8; HDR + REQ];
    msg[0..4].copy_from_slice(&((HDR + REQ) as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let r = HDR;
    msg[r] = family;
    msg[r + 1] = libc::IPPROTO_TCP as u8;
    msg[r + 4..r + 8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    let id = r + 8;
    msg[id..id + 2].copy_from_slice(&from.port().to_be_bytes());
    msg[id + 2..id + 4].copy_from_slice(&to.port().to_be_bytes());
    msg[id + 4..id + 20].copy_from_slice(&src);
    msg[id + 20..id + 36].copy_from_slice(&dst);
    msg[id + 40..id + 48].copy_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE

    // SAFETY: plain socket syscalls on a descriptor owned here, with buffers of the given sizes.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return None;
        }
        let fd = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            raw,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            std::ptr::addr_of!(sa).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent < 0 {
            return None;
        }
        let mut buf = [0u8; 512];
        let n = libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0);
        if n < HDR as isize {
            return None;
        }
        let n = n as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if kind != SOCK_DIAG_BY_FAMILY {
            // NLMSG_ERROR: no such socket (or the lookup is not supported here).
            return None;
        }
        // inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue,
        // uid, inode (u32 each).
        let inode_at = HDR + 4 + 48 + 16;
        if n < inode_at + 4 {
            return None;
        }
        let inode = u32::from_ne_bytes([
            buf[inode_at],
            buf[inode_at + 1],
            buf[inode_at + 2],
            buf[inode_at + 3],
        ]);
        (inode != 0).then_some(u64::from(inode))
    }
}

/// The same lookup through `/proc/net/tcp{,6}` (slow: the kernel prints its whole hash table).
fn proc_net_inode(from: SocketAddr, to: SocketAddr) -> Option<u64> {
    let table = match from {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    let (from, to) = (proc_net_addr(from), proc_net_addr(to));
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 {
            return None;
        }
        let same = cols[1].eq_ignore_ascii_case(&from) && cols[2].eq_ignore_ascii_case(&to);
        if same {
            cols[9].parse().ok()
        } else {
            None
        }
    })
}

/// An address as `/proc/net/tcp{,6}` prints it: the raw network-order words as native hex, then
/// the port in hex.
fn proc_net_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(a) => {
            let o = a.ip().octets();
            let words: String = o
                .chunks_exact(4)
                .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
                .collect();
            format!("{words}:{:04X}", a.port())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn loopback_addresses_are_written_as_the_kernel_does() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(proc_net_addr(a), "0100007F:1F90");
        }
    }

    #[test]
    fn the_netlink_lookup_agrees_with_proc_net_tcp() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        let local = server_side.local_addr().unwrap();
        let fast = diag_inode(peer, local);
        assert!(fast.is_some());
        assert_eq!(fast, proc_net_inode(peer, local));
        // The other direction is the server's socket: a different inode.
        assert_ne!(diag_inode(local, peer), fast);
        drop(client);
    }

    #[test]
    fn a_connection_is_traced_to_the_process_holding_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        let local = server_side.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());

        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours");
        writeln!(
            std::fs::File::create(&ours).unwrap(),
            "{}",
            std::process::id()
        )
        .unwrap();
        assert!(connected_from(&ours, peer, local));

        // Another process (not holding the socket) is not its owner.
        let others = dir.path().join("others");
        writeln!(std::fs::File::create(&others).unwrap(), "1").unwrap();
        assert!(!connected_from(&others, peer, local));

        // Nor is anyone once the connecting socket is gone.
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!connected_from(&ours, peer, local));
    }
}
