"""What a function can reach on the network with `--function-network isolated`:
its own namespace, with the Runtime API at AWS's address (169.254.100.1:9001) and Flint's API at
AWS_ENDPOINT_URL_LAMBDA; not the host's loopback (Flint's port, other services, other
environments' endpoints). From inside, Flint's API answers only to the credentials issued to the
environment, and only within its account."""

import json
import socket
import threading
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


def call(method, path, body=b"", keys=None):
    """A SigV4-signed request to AWS_ENDPOINT_URL_LAMBDA (the runtime has no boto3 here)."""
    import datetime, hashlib, hmac, json, urllib.error, urllib.parse, urllib.request
    key_id, secret, token = keys or (os.environ["AWS_ACCESS_KEY_ID"],
                                     os.environ["AWS_SECRET_ACCESS_KEY"],
                                     os.environ["AWS_SESSION_TOKEN"])
    endpoint = os.environ["AWS_ENDPOINT_URL_LAMBDA"]
    host = urllib.parse.urlparse(endpoint).netloc
    region = os.environ["AWS_REGION"]
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "",
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                           signed, hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/lambda/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, "lambda", "aws4_request"):
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


def handler(event, context):
    action = event["action"]
    if action == "env":
        return {k: os.environ.get(k) for k in (
            "AWS_LAMBDA_RUNTIME_API", "AWS_ENDPOINT_URL_LAMBDA", "AWS_ACCESS_KEY_ID")}
    if action == "connect":
        return {f"{h}:{p}": try_connect(h, p) for h, p in event["targets"]}
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
def isolated(flint_bin: Path, tmp_path_factory) -> FlintServer:
    """A server whose functions run in network namespaces of their own."""
    tmp = tmp_path_factory.mktemp("isolated")
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log",
                      extra_args=("--function-network", "isolated"))
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
