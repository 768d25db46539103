//! Who is on the other end of a loopback TCP connection: every environment's Runtime API listens
//! on the host's 127.0.0.1, so any function could connect to another's and take its events. The
//! answer comes from the kernel's own tables — the connecting socket's inode in `/proc/net/tcp`,
//! then whether a process of the sandbox's cgroup holds that socket — read once per connection
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
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .any(|pid| holds(pid, &wanted))
}

/// Whether process `pid` has a descriptor that links to `wanted` (`socket:[<inode>]`).
fn holds(pid: u32, wanted: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted))
}

/// The inode of the socket whose local address is `from` and remote address is `to`.
fn socket_inode(from: SocketAddr, to: SocketAddr) -> Option<u64> {
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
