"""What a function can reach on the network with `--function-network isolated` (the default):
its own namespace, with the Runtime API at AWS's address (169.254.100.1:9001) and Flint's API at
AWS_ENDPOINT_URL_LAMBDA; other machines through NAT; the AWS endpoints Flint was given on the
host's loopback through forwarders at 169.254.100.1; not the host's loopback otherwise (Flint's
port, other services, other environments' endpoints), nor the host's own addresses, nor other
environments. From inside, Flint's API answers only to the credentials issued to the
environment, and only within its account."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from conftest import FlintServer, create_function, invoke_json, make_zip, random_account, unique_name

PROBE = r'''
import errno, json, os, socket


def try_connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))


def call(method, path, body=b"", keys=None, service="lambda", endpoint=None, content_type=None):
    """A SigV4-signed request to AWS_ENDPOINT_URL_LAMBDA (the runtime has no boto3 here)."""
    import datetime, hashlib, hmac, json, urllib.error, urllib.parse, urllib.request
    key_id, secret, token = keys or (os.environ["AWS_ACCESS_KEY_ID"],
                                     os.environ["AWS_SECRET_ACCESS_KEY"],
                                     os.environ["AWS_SESSION_TOKEN"])
    endpoint = endpoint or os.environ["AWS_ENDPOINT_URL_LAMBDA"]
    host = urllib.parse.urlparse(endpoint).netloc
    region = os.environ["AWS_REGION"]
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-date": amz_date}
    if content_type:
        headers["content-type"] = content_type
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "",
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                           signed, hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    req = urllib.request.Request(endpoint + path, data=body or None, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read(), None
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("x-amzn-ErrorType")


LISTENING = []


def my_address():
    """The environment's own address on its outbound link (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.123", 9))
        return s.getsockname()[0]


def gateway():
    """The default route's gateway (the host's end of the environment's link)."""
    with open("/proc/net/route") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                return socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
    return None


def handler(event, context):
    action = event["action"]
    if action == "env":
        return {k: os.environ.get(k) for k in (
            "AWS_LAMBDA_RUNTIME_API", "AWS_ENDPOINT_URL_LAMBDA", "AWS_ACCESS_KEY_ID",
            "AWS_ENDPOINT_URL", "AWS_XRAY_DAEMON_ADDRESS")}
    if action == "connect":
        timeout = event.get("timeout", 3)
        out = {}
        for h, p in event["targets"]:
            try:
                with socket.create_connection((h, p), timeout=timeout):
                    out[f"{h}:{p}"] = "connected"
            except socket.timeout:
                out[f"{h}:{p}"] = "timeout"
            except OSError as e:
                out[f"{h}:{p}"] = errno.errorcode.get(e.errno, str(e))
        return out
    if action == "addresses":
        return {"self": my_address(), "gateway": gateway()}
    if action == "listen":
        s = socket.socket()
        s.bind(("0.0.0.0", 0))
        s.listen(8)
        LISTENING.append(s)
        return {"address": my_address(), "port": s.getsockname()[1]}
    if action == "fetch":
        with socket.create_connection((event["host"], event["port"]), timeout=10) as s:
            return {"line": s.makefile().readline().strip()}
    if action == "sqs":
        status, body, code = call(
            "POST", "/", b"Action=ListQueues&Version=2012-11-05", service="sqs",
            endpoint=os.environ["AWS_ENDPOINT_URL"],
            content_type="application/x-www-form-urlencoded")
        return {"status": status, "body": body.decode(errors="replace"), "error": code}
    if action == "xray":
        host, port = os.environ["AWS_XRAY_DAEMON_ADDRESS"].split(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, int(port)))
            header = '{"format": "json", "version": 1}\n'
            try:
                for _ in range(3):
                    s.send((header + '{"name": "probe"}').encode())
                s.settimeout(0.3)
                s.recv(10)
                return {"xray": "answered"}
            except socket.timeout:
                return {"xray": "accepted"}
            except ConnectionRefusedError:
                return {"xray": "refused"}
    if action == "api":
        keys = event.get("keys")
        if event["call"] == "list":
            status, body, code = call("GET", "/2015-03-31/functions/", keys=keys)
        elif event["call"] == "invoke":
            status, body, code = call("POST", f"/2015-03-31/functions/{event['target']}/invocations",
                                b'{"action": "env"}', keys=keys)
        else:
            status, body, code = call("GET", f"/2015-03-31/functions/{event['target']}", keys=keys)
        data = json.loads(body or b"{}")
        if status >= 400:
            return {"error": code, "status": status}
        if event["call"] == "list":
            return {"ok": [f["FunctionName"] for f in data["Functions"]]}
        if event["call"] == "invoke":
            return {"ok": body.decode()}
        return {"ok": data["Configuration"]["FunctionArn"]}
    raise ValueError(action)
'''


@pytest.fixture(scope="module")
def isolated(flint_bin: Path, tmp_path_factory, _aws_services_or_none) -> FlintServer:
    """A server whose functions run in network namespaces of their own (and moto's endpoint,
    on the host's loopback, as the AWS endpoint when moto is installed)."""
    tmp = tmp_path_factory.mktemp("isolated")
    args = ["--function-network", "isolated"]
    env = {}
    if _aws_services_or_none is not None:
        args += ["--aws-endpoint-url", _aws_services_or_none.endpoint]
        env = _aws_services_or_none.flint_env()
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log",
                      extra_args=args, extra_env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def account(isolated):
    return random_account()


@pytest.fixture(scope="module")
def client(isolated, account):
    return isolated.client(account)


@pytest.fixture(scope="module")
def probe(client) -> str:
    name = unique_name("netprobe")
    create_function(client, name, zip_bytes=make_zip({"index.py": PROBE}), Timeout=30)
    return name


@pytest.fixture(scope="module")
def other_account_fn(isolated) -> str:
    other = isolated.client(random_account())
    name = unique_name("victim")
    create_function(other, name, zip_bytes=make_zip({"index.py": PROBE}))
    return name


def test_the_runtime_api_and_flints_api_are_at_awss_addresses(client, probe):
    _, out = invoke_json(client, probe, {"action": "env"})
    assert out["AWS_LAMBDA_RUNTIME_API"] == "169.254.100.1:9001"
    assert out["AWS_ENDPOINT_URL_LAMBDA"] == "http://169.254.100.1:9000"
    assert out["AWS_ACCESS_KEY_ID"].startswith("ASIA")


def test_the_hosts_loopback_services_are_unreachable(client, probe, isolated):
    host_service = socket.socket()
    host_service.bind(("127.0.0.1", 0))
    host_service.listen(8)
    port = host_service.getsockname()[1]
    try:
        _, out = invoke_json(client, probe, {"action": "connect", "targets": [
            ["127.0.0.1", port], ["127.0.0.1", isolated.port]]})
        assert out == {f"127.0.0.1:{port}": "ECONNREFUSED",
                       f"127.0.0.1:{isolated.port}": "ECONNREFUSED"}
        host_service.setblocking(False)
        with pytest.raises(BlockingIOError):
            host_service.accept()
    finally:
        host_service.close()


def test_another_environments_runtime_api_is_unreachable(client, probe):
    # Every environment's Runtime API is 169.254.100.1:9001 in its own namespace: the only one
    # a function reaches is its own, and nothing listens on the host's loopback for it.
    _, out = invoke_json(client, probe, {"action": "connect", "targets": [
        ["169.254.100.1", 9001], ["127.0.0.1", 9001]]})
    assert out == {"169.254.100.1:9001": "connected", "127.0.0.1:9001": "ECONNREFUSED"}


def test_with_its_issued_credentials_a_function_uses_the_api_in_its_own_account(
        client, probe, account):
    _, out = invoke_json(client, probe, {"action": "api", "call": "list"})
    assert probe in out.get("ok", []), out
    _, out = invoke_json(client, probe, {"action": "api", "call": "get", "target": probe})
    assert out == {"ok": f"arn:aws:lambda:us-east-1:{account}:function:{probe}"}
    # Lambda-to-Lambda within the account.
    _, out = invoke_json(client, probe, {"action": "api", "call": "invoke", "target": probe})
    assert "169.254.100.1:9001" in out.get("ok", ""), out


def test_another_accounts_functions_are_out_of_reach(client, probe, other_account_fn):
    _, out = invoke_json(client, probe, {"action": "api", "call": "get",
                                         "target": other_account_fn})
    assert out.get("error") == "ResourceNotFoundException", out


@pytest.mark.parametrize("keys", [
    ["123456789012", "made-up-secret", None],
    ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None],
    ["ASIAFAKEFAKEFAKEFAKE", "made-up", "token"],
], ids=["another-accounts-key", "made-up-key", "made-up-session"])
def test_other_or_made_up_keys_are_refused_from_inside(client, probe, keys):
    _, out = invoke_json(client, probe, {"action": "api", "call": "list", "keys": keys})
    assert out == {"error": "UnrecognizedClientException", "status": 403}, out


def test_issued_credentials_from_outside_act_in_the_functions_account(
        client, probe, isolated, account):
    # What a leaked key would give: only its own account, and only while its environment lives.
    _, env = invoke_json(client, probe, {"action": "env"})
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    bad = isolated.client(access_key=env["AWS_ACCESS_KEY_ID"])
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.list_functions()
    # Without the matching secret and session token it is refused, not taken as account 000….
    assert e.value.response["Error"]["Code"] in (
        "UnrecognizedClientException", "InvalidSignatureException")


# --------------------------------------------------------------------------------------------
# Outbound access (veth + NAT; Flint as root with iproute2 and nftables)
# --------------------------------------------------------------------------------------------

def outbound_available(server: FlintServer) -> bool:
    return "other machines through NAT" in server.log_tail()


@pytest.fixture(scope="module")
def outbound(isolated):
    if not outbound_available(isolated):
        pytest.skip("no outbound access for isolated functions here (Flint's log says why)")


REMOTE_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(f"hello from the remote machine, you are {peer[0]}\n".encode())
    c.close()
"""


class RemoteMachine:
    """Another machine as far as the network goes: a network namespace of its own (not the
    host's, not Flint's), joined to the host by a veth pair like a LAN neighbour, with a TCP
    server in it. What reaching it proves: packets from a function leave its namespace, are
    routed and NATed by the host, and come back; not that the host's uplink works."""

    HOST_SIDE = "198.18.231.1"
    ADDRESS = "198.18.231.2"
    PORT = 7777

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.netns = f"flint-remote-{tag}"
        self.link = f"frm{tag}"
        ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True)
        ip("netns", "add", self.netns)
        ip("link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        ip("addr", "add", f"{self.HOST_SIDE}/30", "dev", self.link)
        ip("link", "set", self.link, "up")
        ip("-n", self.netns, "addr", "add", f"{self.ADDRESS}/30", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        ip("-n", self.netns, "link", "set", "lo", "up")
        ip("-n", self.netns, "route", "add", "default", "via", self.HOST_SIDE)
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", REMOTE_SERVER,
             str(self.PORT)], stdout=subprocess.PIPE, text=True)
        assert self.server.stdout.readline().strip() == "listening"

    def close(self):
        self.server.kill()
        self.server.wait()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)


@pytest.fixture(scope="module")
def remote_machine(outbound):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("making a stand-in remote machine needs root and iproute2")
    machine = RemoteMachine()
    yield machine
    machine.close()


def test_a_function_reaches_another_machine_through_nat(client, probe, remote_machine):
    _, me = invoke_json(client, probe, {"action": "addresses"})
    assert me["self"].startswith("10.201."), me
    _, out = invoke_json(client, probe, {"action": "fetch", "host": remote_machine.ADDRESS,
                                         "port": remote_machine.PORT})
    # The remote machine sees the host's address, not the function's: masqueraded.
    assert out == {"line": "hello from the remote machine, you are "
                           f"{remote_machine.HOST_SIDE}"}, out


def test_the_hosts_own_addresses_are_unreachable(client, probe, outbound):
    # A service on every address of the host (0.0.0.0): loopback is another namespace's, and
    # the host's other addresses (its LAN address, the end of the function's own link) drop.
    service = socket.socket()
    service.bind(("0.0.0.0", 0))
    service.listen(8)
    port = service.getsockname()[1]
    host_addresses = sorted({
        fields[3].split("/")[0]
        for fields in (line.split() for line in subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout.splitlines())
        if fields[1] != "lo" and not fields[1].startswith("flintv")})
    assert host_addresses
    try:
        _, me = invoke_json(client, probe, {"action": "addresses"})
        targets = [[a, port] for a in host_addresses + [me["gateway"]]]
        _, out = invoke_json(client, probe, {"action": "connect", "targets": targets,
                                             "timeout": 1})
        assert out == {f"{a}:{p}": "timeout" for a, p in targets}, out
        # Nothing got through to the service.
        service.setblocking(False)
        with pytest.raises(BlockingIOError):
            service.accept()
    finally:
        service.close()


def test_another_environment_is_unreachable(client, outbound):
    # Two functions (two environments); one listens on every address of its namespace. The
    # other cannot connect to it; the listener itself can (so it is there).
    a, b = unique_name("neigh-a"), unique_name("neigh-b")
    for name in (a, b):
        create_function(client, name, zip_bytes=make_zip({"index.py": PROBE}), Timeout=30)
    _, listening = invoke_json(client, b, {"action": "listen"})
    target = [listening["address"], listening["port"]]
    _, own = invoke_json(client, b, {"action": "connect", "targets": [target], "timeout": 1})
    assert own == {f"{target[0]}:{target[1]}": "connected"}
    _, other = invoke_json(client, a, {"action": "connect", "targets": [target], "timeout": 1})
    assert other == {f"{target[0]}:{target[1]}": "timeout"}, other
    # Nor from the host: nothing opens connections into an environment.
    with pytest.raises(OSError):
        socket.create_connection(tuple(target), timeout=1).close()


def test_a_configured_aws_endpoint_on_the_hosts_loopback_is_reachable(
        client, probe, isolated, aws_services):
    queue = unique_name("from-inside")
    aws_services.client("sqs").create_queue(QueueName=queue)
    _, env = invoke_json(client, probe, {"action": "env"})
    # moto listens on 127.0.0.1:PORT; inside, the same port at the namespace address.
    assert env["AWS_ENDPOINT_URL"] == f"http://169.254.100.1:{aws_services.port}", env
    _, out = invoke_json(client, probe, {"action": "sqs"})
    assert out["status"] == 200, out
    assert queue in out["body"], out


def test_the_xray_daemon_address_accepts_segments(client, probe):
    _, env = invoke_json(client, probe, {"action": "env"})
    assert env["AWS_XRAY_DAEMON_ADDRESS"] == "169.254.100.1:2000"
    _, out = invoke_json(client, probe, {"action": "xray"})
    assert out == {"xray": "accepted"}


def test_a_bad_function_subnet_is_refused_at_start(flint_bin: Path, tmp_path):
    for bad, says in [("10.0.0.0/8", "must be /16 to /24"),
                      ("fd00::/64", "not an IPv4 address"),
                      ("10.201.3.0/16", "did you mean 10.201.0.0/16?")]:
        out = subprocess.run([str(flint_bin), "serve", "--data-dir", str(tmp_path / "data"),
                              "--function-subnet", bad], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode != 0
        assert says in out.stderr, out.stderr
    # Nothing was started or touched.
    assert not (tmp_path / "data").exists()


def test_the_function_subnet_can_be_moved(flint_bin: Path, tmp_path, remote_machine):
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_args=["--function-network", "isolated",
                                  "--function-subnet", "10.77.12.0/24"])
    srv.start()
    try:
        assert "sandbox addresses 10.77.12.0/24" in srv.log_tail()
        client = srv.client(random_account())
        name = unique_name("moved")
        create_function(client, name, zip_bytes=make_zip({"index.py": PROBE}), Timeout=30)
        _, me = invoke_json(client, name, {"action": "addresses"})
        assert me["self"].startswith("10.77.12."), me
        _, out = invoke_json(client, name, {"action": "fetch", "host": remote_machine.ADDRESS,
                                            "port": remote_machine.PORT})
        assert out == {"line": "hello from the remote machine, you are "
                               f"{remote_machine.HOST_SIDE}"}, out
    finally:
        srv.stop()
