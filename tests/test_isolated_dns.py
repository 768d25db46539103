"""DNS inside isolated environments when the host's resolver is on its own loopback (as
systemd-resolved's 127.0.0.53 or a local dnsmasq is): the environment's namespace has no host
loopback, so Flint relays DNS (UDP and TCP) from 169.254.100.1:53 to the host's nameservers and
writes the environment's resolv.conf accordingly. The resolver here is a real dnsmasq on a
loopback address, named by the resolv.conf Flint is pointed at (FLINT_RESOLV_CONF)."""

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FlintServer, create_function, invoke_json, make_zip, random_account, unique_name

PROBE = r'''
import socket, struct, time


def query(name, qtype=1):
    """A DNS query (id 0x1234, recursion desired) for `name`."""
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


def nameserver():
    with open("/etc/resolv.conf") as f:
        for line in f:
            if line.startswith("nameserver"):
                return line.split()[1]


def handler(event, context):
    action = event["action"]
    if action == "resolv.conf":
        with open("/etc/resolv.conf") as f:
            return {"text": f.read()}
    if action == "resolve":
        out = {}
        for name in event["names"]:
            try:
                out[name] = socket.gethostbyname(name)
            except socket.gaierror as e:
                out[name] = {"errno": e.errno, "error": e.strerror}
        return out
    if action == "tcp":
        q = query(event["name"])
        with socket.create_connection((nameserver(), 53), timeout=5) as s:
            s.sendall(struct.pack(">H", len(q)) + q)
            f = s.makefile("rb")
            (n,) = struct.unpack(">H", f.read(2))
            answer = f.read(n)
        flags, ancount = struct.unpack(">H", answer[2:4])[0], struct.unpack(">H", answer[6:8])[0]
        return {"rcode": flags & 0xF, "answers": ancount,
                "address": socket.inet_ntoa(answer[-4:]) if ancount else None}
    if action == "flood":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((nameserver(), 53))
        q = query("flood.flint-test.example")
        started = time.monotonic()
        for _ in range(event["count"]):
            s.send(q)
        s.settimeout(1.0)
        answered = 0
        try:
            while True:
                s.recv(4096)
                answered += 1
        except socket.timeout:
            pass
        return {"answered": answered, "seconds": time.monotonic() - started}
    raise ValueError(action)
'''


class Dnsmasq:
    """dnsmasq answering on a loopback address of the host, port 53: names under
    flint-test.example resolve to 10.9.8.7, names under missing.example are NXDOMAIN."""

    def __init__(self, tmp: Path):
        self.address = f"127.{random.randint(60, 250)}.{random.randint(1, 250)}.53"
        self.log = tmp / "dnsmasq.log"
        self.proc = subprocess.Popen(
            [shutil.which("dnsmasq"), "--keep-in-foreground", "--no-resolv", "--no-hosts",
             "--conf-file=/dev/null", "--bind-interfaces", "--listen-address", self.address,
             "--port", "53", "--address=/flint-test.example/10.9.8.7",
             "--address=/missing.example/", "--log-queries", f"--log-facility={self.log}",
             "--pid-file=", "--user=root"],
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.proc.stderr.read().decode()}")
            try:
                with socket.create_connection((self.address, 53), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not start listening")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a resolver on port 53 and network namespaces need root")
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    server = Dnsmasq(tmp_path_factory.mktemp("dnsmasq"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def host_resolv_conf(tmp_path_factory, dnsmasq) -> Path:
    path = tmp_path_factory.mktemp("resolv") / "resolv.conf"
    path.write_text(f"# like systemd-resolved's stub\nnameserver {dnsmasq.address}\n"
                    "options edns0 timeout:2\nsearch flint-test.example\n")
    return path


@pytest.fixture(scope="module")
def isolated(flint_bin: Path, tmp_path_factory, host_resolv_conf) -> FlintServer:
    tmp = tmp_path_factory.mktemp("isolated-dns")
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log",
                      extra_args=["--function-network", "isolated"],
                      extra_env={"FLINT_RESOLV_CONF": str(host_resolv_conf)})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(isolated):
    return isolated.client(random_account())


@pytest.fixture(scope="module")
def probe(client) -> str:
    name = unique_name("dnsprobe")
    create_function(client, name, zip_bytes=make_zip({"index.py": PROBE}), Timeout=30)
    return name


def test_the_environment_names_the_relay_and_keeps_search_and_options(client, probe):
    _, out = invoke_json(client, probe, {"action": "resolv.conf"})
    lines = [l for l in out["text"].splitlines() if not l.startswith("#")]
    assert lines == ["nameserver 169.254.100.1", "options edns0 timeout:2",
                     "search flint-test.example"], out


def test_a_name_resolves_through_the_hosts_loopback_resolver(client, probe, dnsmasq):
    _, out = invoke_json(client, probe, {"action": "resolve", "names": [
        "www.flint-test.example", "short", "nothing-here.missing.example."]})
    assert out["www.flint-test.example"] == "10.9.8.7", out
    # The host's `search` line applies inside.
    assert out["short"] == "10.9.8.7", out
    # NXDOMAIN comes back as such: "Name or service not known" (absolute: no search domain).
    assert out["nothing-here.missing.example."]["errno"] == socket.EAI_NONAME, out
    # The queries reached the real resolver.
    assert "www.flint-test.example" in dnsmasq.log.read_text()


def test_dns_over_tcp_is_relayed_too(client, probe):
    _, out = invoke_json(client, probe, {"action": "tcp", "name": "tcp.flint-test.example"})
    assert out == {"rcode": 0, "answers": 1, "address": "10.9.8.7"}, out
    _, out = invoke_json(client, probe, {"action": "tcp", "name": "x.missing.example"})
    assert out["rcode"] == 3 and out["answers"] == 0, out  # NXDOMAIN


def test_a_flood_of_queries_is_cut_to_the_relays_rate(client, probe):
    _, out = invoke_json(client, probe, {"action": "flood", "count": 3000})
    # 400 at once, then 200 a second (64 awaiting an answer at most): far fewer than sent.
    allowed = 400 + 200 * out["seconds"]
    assert 0 < out["answered"] <= allowed, out
    # The relay answers again once the function slows down (the bucket refills).
    _, out = invoke_json(client, probe, {"action": "resolve", "names": ["after.flint-test.example"]})
    assert out == {"after.flint-test.example": "10.9.8.7"}, out
