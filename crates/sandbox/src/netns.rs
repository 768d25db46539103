//! A sandbox's own network namespace, and the listeners Flint serves inside it. PID 1 (which holds
//! every capability over the namespace) brings up the loopback, gives it the link-local address
//! AWS uses for its Runtime API (169.254.100.1), opens the listening sockets and hands them to
//! Flint over the control socket (SCM_RIGHTS). A socket stays in the namespace it was created in:
//! Flint accepts connections that only the sandbox's processes can make, with no peer check, and
//! it works whether Flint is root or not.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The sandbox's link-local address, where Flint listens for it (AWS's Runtime API address).
pub const NAMESPACE_HOST: Ipv4Addr = Ipv4Addr::new(169, 254, 100, 1);
/// The Runtime API's port inside the namespace (`AWS_LAMBDA_RUNTIME_API=169.254.100.1:9001`).
pub const RUNTIME_API_PORT: u16 = 9001;
/// Flint's Lambda API inside the namespace (`AWS_ENDPOINT_URL_LAMBDA`).
pub const LAMBDA_API_PORT: u16 = 9000;
/// The DNS relay's port (UDP and TCP) at [`NAMESPACE_HOST`], when [`NamespacePorts::dns`].
pub const DNS_PORT: u16 = 53;

/// The byte that carries the listeners on the control socket; [`FAILED`] when PID 1 could not
/// make them (it then exits, and the supervisor reports why the sandbox did not start).
pub(crate) const LISTENERS: u8 = b'L';
pub(crate) const FAILED: u8 = b'E';

/// Extra sockets at [`NAMESPACE_HOST`] in every isolated sandbox, besides the Runtime API and
/// Lambda API listeners: TCP listeners (e.g. forwarders to AWS endpoints on the host's loopback)
/// and UDP sockets (e.g. the X-Ray daemon's address). Set once for all sandboxes
/// ([`crate::Sandboxes::set_namespace_ports`]); PID 1 opens them before the sandbox is prepared.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamespacePorts {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    /// A DNS relay's sockets at `169.254.100.1:53` (UDP and TCP), last.
    pub dns: bool,
}

impl NamespacePorts {
    /// How many descriptors PID 1 sends: the two fixed listeners, then these.
    pub(crate) fn descriptors(&self) -> usize {
        2 + self.tcp.len() + self.udp.len() + if self.dns { 2 } else { 0 }
    }
}

/// The DNS relay's sockets inside a namespace: what the environment's `resolv.conf` names.
#[derive(Debug)]
pub struct DnsSockets {
    pub udp: std::net::UdpSocket,
    pub tcp: std::net::TcpListener,
}

/// Listening sockets inside an isolated sandbox's network namespace, for Flint to serve.
#[derive(Debug)]
pub struct NamespaceListeners {
    /// `169.254.100.1:9001`: the Runtime API.
    pub runtime_api: std::net::TcpListener,
    /// `169.254.100.1:9000`: Flint's Lambda API, as reached from this sandbox.
    pub lambda_api: std::net::TcpListener,
    /// `169.254.100.1:<port>` for each of [`NamespacePorts::tcp`], in that order.
    pub tcp: Vec<(u16, std::net::TcpListener)>,
    /// `169.254.100.1:<port>` (UDP) for each of [`NamespacePorts::udp`], in that order.
    pub udp: Vec<(u16, std::net::UdpSocket)>,
    /// `169.254.100.1:53`, UDP and TCP, with [`NamespacePorts::dns`].
    pub dns: Option<DnsSockets>,
}

/// In PID 1, inside the new namespace: loopback up with the link-local address, and the
/// listeners (in this order: Runtime API, Lambda API, `ports.tcp`, `ports.udp`, then the DNS
/// relay's UDP socket and TCP listener).
pub(crate) fn set_up_inside(ports: &NamespacePorts) -> Result<Vec<OwnedFd>, String> {
    let sock = socket(libc::SOCK_DGRAM).map_err(|e| format!("socket: {e}"))?;
    interface_up(&sock, "lo").map_err(|e| format!("loopback up: {e}"))?;
    add_address(&sock, "lo:1", NAMESPACE_HOST, Ipv4Addr::BROADCAST)
        .map_err(|e| format!("address {NAMESPACE_HOST}: {e}"))?;
    drop(sock);
    let mut fds = Vec::with_capacity(ports.descriptors());
    fds.push(listen(SocketAddrV4::new(NAMESPACE_HOST, RUNTIME_API_PORT))?);
    fds.push(listen(SocketAddrV4::new(NAMESPACE_HOST, LAMBDA_API_PORT))?);
    for port in &ports.tcp {
        fds.push(listen(SocketAddrV4::new(NAMESPACE_HOST, *port))?);
    }
    for port in &ports.udp {
        fds.push(bind_udp(SocketAddrV4::new(NAMESPACE_HOST, *port))?);
    }
    if ports.dns {
        fds.push(bind_udp(SocketAddrV4::new(NAMESPACE_HOST, DNS_PORT))?);
        fds.push(listen(SocketAddrV4::new(NAMESPACE_HOST, DNS_PORT))?);
    }
    Ok(fds)
}

pub(crate) fn socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        ifr.ifr_name[i] = b as libc::c_char;
    }
    ifr
}

pub(crate) fn interface_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut ifr = ifreq(name);
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS with a correctly sized ifreq on an owned socket.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Sets `ip` with `netmask` on an interface, or adds it through an alias label (`lo:1`):
/// ioctls, no netlink needed.
pub(crate) fn add_address(
    sock: &OwnedFd,
    label: &str,
    ip: Ipv4Addr,
    netmask: Ipv4Addr,
) -> io::Result<()> {
    for (request, value) in [(libc::SIOCSIFADDR, ip), (libc::SIOCSIFNETMASK, netmask)] {
        let mut ifr = ifreq(label);
        let addr = sockaddr(value, 0);
        // SAFETY: sockaddr_in fits in the ifreq union's sockaddr (both 16 bytes).
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&addr as *const libc::sockaddr_in).cast::<u8>(),
                (&mut ifr.ifr_ifru.ifru_addr as *mut libc::sockaddr).cast::<u8>(),
                std::mem::size_of::<libc::sockaddr_in>(),
            );
            if libc::ioctl(sock.as_raw_fd(), request, &ifr) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// A default route through `gateway` (an address on a directly connected link).
pub(crate) fn add_default_route(sock: &OwnedFd, gateway: Ipv4Addr) -> io::Result<()> {
    // SAFETY: rtentry is plain data; all zeroes is a valid value (no device, no metric).
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    let as_sockaddr = |ip: Ipv4Addr| {
        let addr = sockaddr(ip, 0);
        // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes); plain data.
        unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(addr) }
    };
    route.rt_dst = as_sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = as_sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = as_sockaddr(gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT with a fully initialised rtentry on an owned socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &route) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bind_udp(at: SocketAddrV4) -> Result<OwnedFd, String> {
    let sock = socket(libc::SOCK_DGRAM).map_err(|e| format!("socket: {e}"))?;
    let addr = sockaddr(*at.ip(), at.port());
    // SAFETY: bind on an owned socket with a correctly sized address.
    let bound = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(format!("bind udp {at}: {}", io::Error::last_os_error()));
    }
    Ok(sock)
}

fn listen(at: SocketAddrV4) -> Result<OwnedFd, String> {
    let fail = |what: &str| format!("{what} {at}: {}", io::Error::last_os_error());
    let sock = socket(libc::SOCK_STREAM).map_err(|e| format!("socket: {e}"))?;
    let addr = sockaddr(*at.ip(), at.port());
    let one: libc::c_int = 1;
    // SAFETY: setsockopt/bind/listen on an owned socket with correctly sized arguments.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        if libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(fail("bind"));
        }
        if libc::listen(sock.as_raw_fd(), 128) != 0 {
            return Err(fail("listen"));
        }
    }
    Ok(sock)
}

/// Sends one byte with `fds` attached on a unix stream socket.
pub(crate) fn send_fds(sock: RawFd, byte: u8, fds: &[RawFd]) -> io::Result<()> {
    let mut data = [byte];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u8; space.max(1)];
    // SAFETY: msghdr is plain data; zeroed is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer is CMSG_SPACE(fd_bytes) long, so the first header and its
        // data (fd_bytes) fit in it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    loop {
        // SAFETY: sendmsg with the message built above, whose buffers outlive the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n == 1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one byte and the descriptors attached to it (close-on-exec) from a unix stream
/// socket. Reads exactly one byte, so whatever follows stays for the caller's line reader.
pub(crate) fn recv_fds(sock: RawFd, max: usize) -> io::Result<(u8, Vec<OwnedFd>)> {
    let mut data = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((max * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: recvmsg into the buffers above, which outlive the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "sandbox init exited during set-up",
        ));
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into our buffer; each SCM_RIGHTS
    // payload is an array of descriptors now owned by this process.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = bytes / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other(
            "too many descriptors from the sandbox init",
        ));
    }
    Ok((data[0], fds))
}

/// `SIOCGSKNS` (linux/sockios.h): a file descriptor for the network namespace of a socket.
const SIOCGSKNS: libc::c_ulong = 0x894C;

/// A sandbox's network namespace, held by Flint to open connections *into* it (the Telemetry
/// API's deliveries to an extension's listener on the environment's own loopback). Taken from a
/// socket that lives there; needs `CAP_NET_ADMIN` over the namespace (Flint as root).
#[derive(Debug, Clone)]
pub struct NamespaceConnector {
    ns: std::sync::Arc<OwnedFd>,
}

impl NamespaceConnector {
    /// The namespace `socket` lives in.
    pub fn of_socket(socket: &impl AsRawFd) -> io::Result<Self> {
        // SAFETY: ioctl(SIOCGSKNS) on a socket we own takes no argument and returns a new
        // descriptor (or -1, checked).
        let fd = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSKNS as _) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        let ns = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            ns: std::sync::Arc::new(ns),
        })
    }

    /// Connects to `addr` as seen from inside the namespace. Blocking: a short-lived thread
    /// enters the namespace (network namespaces are per thread), connects and ends; the socket
    /// stays in the namespace it was made in.
    pub fn connect(
        &self,
        addr: std::net::SocketAddr,
        timeout: std::time::Duration,
    ) -> io::Result<std::net::TcpStream> {
        use std::os::fd::AsFd;
        let ns = self.ns.clone();
        std::thread::Builder::new()
            .name("flint-netns-connect".into())
            .spawn(move || {
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
                std::net::TcpStream::connect_timeout(&addr, timeout)
            })?
            .join()
            .map_err(|_| io::Error::other("namespace connect thread panicked"))?
    }
}

impl NamespaceListeners {
    /// A connector into the namespace these listeners live in.
    pub fn connector(&self) -> io::Result<NamespaceConnector> {
        NamespaceConnector::of_socket(&self.runtime_api)
    }

    /// The descriptors PID 1 sent, in [`set_up_inside`]'s order.
    pub(crate) fn from_fds(fds: Vec<OwnedFd>, ports: &NamespacePorts) -> io::Result<Self> {
        if fds.len() != ports.descriptors() {
            return Err(io::Error::other(
                "the sandbox init sent the wrong number of listeners",
            ));
        }
        let mut fds = fds.into_iter();
        let mut tcp = || fds.next().map(std::net::TcpListener::from);
        let (Some(runtime_api), Some(lambda_api)) = (tcp(), tcp()) else {
            return Err(io::Error::other("the sandbox init sent no listeners"));
        };
        let tcp_ports: Vec<(u16, std::net::TcpListener)> = ports
            .tcp
            .iter()
            .filter_map(|p| Some((*p, tcp()?)))
            .collect();
        let udp: Vec<(u16, std::net::UdpSocket)> = ports
            .udp
            .iter()
            .zip(fds.by_ref())
            .map(|(p, fd)| (*p, std::net::UdpSocket::from(fd)))
            .collect();
        let dns = match (ports.dns, fds.next(), fds.next()) {
            (true, Some(udp), Some(tcp)) => Some(DnsSockets {
                udp: udp.into(),
                tcp: tcp.into(),
            }),
            _ => None,
        };
        Ok(Self {
            runtime_api,
            lambda_api,
            tcp: tcp_ports,
            udp,
            dns,
        })
    }
}
