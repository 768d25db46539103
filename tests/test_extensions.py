"""The Extensions API and the Telemetry API as AWS's: an external extension from a layer
(`/opt/extensions/*`, written against the raw HTTP API in tests/fixtures/extensions) is started
before the runtime, registers, gets INVOKE with AWS's fields, keeps the invocation open while it
works (the post-runtime phase, counted in REPORT), receives the platform's telemetry and the
function's log lines at its `sandbox.localdomain` listener, and gets SHUTDOWN when the environment
is retired. An extension that crashes or reports an init error fails Init as AWS reports it."""

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    CallbackServer,
    FlintServer,
    FIXTURES,
    create_function,
    free_port,
    invoke_json,
    make_zip,
    request_id,
    unique_name,
    wait_active,
)

HANDLER = (
    "import time\n"
    "def handler(event, context):\n"
    "    print('hello from the function')\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    return {'ok': True}\n"
)


def extension_layer(lambda_client, name="recorder"):
    script = (FIXTURES / "extensions" / "recorder.py").read_bytes()
    zip_bytes = make_zip({f"extensions/{name}": (script, 0o755)})
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("ext"), Content={"ZipFile": zip_bytes})
    return layer["LayerVersionArn"]


def function_with_extension(lambda_client, callback_server, **env):
    layer = extension_layer(lambda_client)
    name = unique_name("ext-fn")
    create_function(
        lambda_client, name, runtime="python3.12",
        zip_bytes=make_zip({"index.py": HANDLER}), Layers=[layer], Timeout=10,
        Environment={"Variables": {"RECORDER_URL": callback_server.url, **env}})
    return name


def records(callback_server):
    out = []
    with callback_server.cond:
        bodies = list(callback_server.received)
    for body in bodies:
        try:
            out.append(json.loads(body))
        except ValueError:
            pass
    return out


def wait_record(callback_server, predicate, timeout=20):
    """The first record the extension reported that satisfies `predicate`."""
    found = callback_server.wait_for(
        lambda body: _matches(body, predicate), timeout=timeout)
    assert found is not None, f"no such record; got {records(callback_server)}"
    return json.loads(found)


def _matches(body, predicate):
    try:
        return predicate(json.loads(body))
    except (ValueError, KeyError, TypeError):
        return False


def telemetry_events(callback_server):
    return [e for r in records(callback_server) if r["kind"] == "telemetry" for e in r["events"]]


def wait_telemetry(callback_server, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in telemetry_events(callback_server):
            if predicate(e):
                return e
        with callback_server.cond:
            callback_server.cond.wait(0.2)
    raise AssertionError(f"no such telemetry event; got {telemetry_events(callback_server)}")


def test_an_extension_from_a_layer_receives_invoke_telemetry_and_shutdown(
        lambda_client, callback_server):
    name = function_with_extension(lambda_client, callback_server)
    resp, payload = invoke_json(lambda_client, name, {"x": 1})
    assert payload == {"ok": True}
    assert "FunctionError" not in resp
    rid = request_id(resp)

    reg = wait_record(callback_server, lambda r: r["kind"] == "register")
    assert reg["status"] == 200 and reg["has_id"]
    assert reg["body"] == {"functionName": name, "functionVersion": "$LATEST",
                           "handler": "index.handler", "accountId": DEFAULT_ACCOUNT}
    sub = wait_record(callback_server, lambda r: r["kind"] == "subscribe")
    assert sub["status"] == 200 and sub["body"] == '"OK"'

    inv = wait_record(callback_server, lambda r: r["kind"] == "event"
                      and r["event"]["eventType"] == "INVOKE")["event"]
    assert inv["requestId"] == rid
    assert inv["invokedFunctionArn"].endswith(f":function:{name}")
    assert inv["deadlineMs"] > time.time() * 1000
    assert inv["tracing"]["type"] == "X-Amzn-Trace-Id"
    assert inv["tracing"]["value"].startswith("Root=1-")

    start = wait_telemetry(callback_server, lambda e: e["type"] == "platform.start")
    assert start["record"]["requestId"] == rid and start["record"]["version"] == "$LATEST"
    wait_telemetry(callback_server, lambda e: e["type"] == "function"
                   and "hello from the function" in e["record"])
    # The extension's own output is `extension`, not the function's.
    own = wait_telemetry(callback_server, lambda e: e["type"] == "extension")
    assert own["record"] == "[recorder] ready"
    assert not [e for e in telemetry_events(callback_server)
                if e["type"] == "function" and "[recorder]" in e["record"]]
    done = wait_telemetry(callback_server, lambda e: e["type"] == "platform.runtimeDone")
    assert done["record"]["requestId"] == rid and done["record"]["status"] == "success"
    assert done["record"]["metrics"]["durationMs"] >= 0
    report = wait_telemetry(callback_server, lambda e: e["type"] == "platform.report")
    metrics = report["record"]["metrics"]
    assert report["record"]["status"] == "success"
    assert metrics["memorySizeMB"] == 128 and metrics["billedDurationMs"] >= 1
    assert "initDurationMs" in metrics
    init = wait_telemetry(callback_server, lambda e: e["type"] == "platform.initReport")
    assert init["record"]["phase"] == "init" and init["record"]["status"] == "success"
    sub_event = wait_telemetry(
        callback_server, lambda e: e["type"] == "platform.telemetrySubscription")
    assert sub_event["record"] == {"name": "recorder", "state": "Subscribed",
                                   "types": ["platform", "function", "extension"]}
    ext = wait_telemetry(callback_server, lambda e: e["type"] == "platform.extension")
    assert ext["record"] == {"name": "recorder", "state": "Ready",
                             "events": ["INVOKE", "SHUTDOWN"]}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", start["time"])

    # A second invoke reuses the environment: the same extension gets the next INVOKE.
    resp2, _ = invoke_json(lambda_client, name, {"x": 2})
    rid2 = request_id(resp2)
    wait_record(callback_server, lambda r: r["kind"] == "event"
                and r["event"].get("requestId") == rid2)
    assert len([r for r in records(callback_server) if r["kind"] == "register"]) == 1

    # A configuration change retires the environment: SHUTDOWN (spindown) comes first.
    lambda_client.update_function_configuration(FunctionName=name, Description="changed")
    wait_active(lambda_client, name)
    shutdown = wait_record(callback_server, lambda r: r["kind"] == "event"
                           and r["event"]["eventType"] == "SHUTDOWN")["event"]
    assert shutdown["shutdownReason"] == "spindown"
    assert shutdown["deadlineMs"] > time.time() * 1000 - 5000


def test_a_logs_api_subscriber_gets_newline_delimited_json_over_tcp(
        lambda_client, callback_server):
    name = function_with_extension(lambda_client, callback_server, RECORDER_TCP="1")
    resp, payload = invoke_json(lambda_client, name, {})
    assert payload == {"ok": True}
    rid = request_id(resp)
    sub = wait_record(callback_server, lambda r: r["kind"] == "subscribe")
    assert sub["status"] == 200
    wait_telemetry(callback_server, lambda e: e["type"] == "platform.logsSubscription")
    start = wait_telemetry(callback_server, lambda e: e["type"] == "platform.start")
    assert start["record"] == {"requestId": rid, "version": "$LATEST"}
    wait_telemetry(callback_server, lambda e: e["type"] == "function"
                   and "hello from the function" in e["record"])
    end = wait_telemetry(callback_server, lambda e: e["type"] == "platform.end")
    assert end["record"] == {"requestId": rid}
    report = wait_telemetry(callback_server, lambda e: e["type"] == "platform.report")
    assert report["record"]["requestId"] == rid and "status" not in report["record"]
    assert not [e for e in telemetry_events(callback_server)
                if e["type"].startswith("platform.init")]


def test_the_invocation_lasts_until_the_extension_asks_for_its_next_event(
        lambda_client, callback_server):
    name = function_with_extension(lambda_client, callback_server, RECORDER_SLOW_MS="700")
    invoke_json(lambda_client, name, {})  # cold start
    resp, payload = invoke_json(lambda_client, name, {}, LogType="Tail")
    assert payload == {"ok": True}
    tail = base64.b64decode(resp["LogResult"]).decode()
    duration = float(re.search(r"\tDuration: ([\d.]+) ms", tail).group(1))
    assert duration >= 700, tail
    # The function itself was quick: the runtime's own time says so.
    rid = request_id(resp)
    done = wait_telemetry(callback_server, lambda e: e["type"] == "platform.runtimeDone"
                          and e["record"]["requestId"] == rid)
    assert done["record"]["metrics"]["durationMs"] < duration


def test_an_invoke_timeout_sends_shutdown_with_reason_timeout(lambda_client, callback_server):
    name = function_with_extension(lambda_client, callback_server)
    lambda_client.update_function_configuration(FunctionName=name, Timeout=1)
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {"sleep": 5})
    assert payload["errorType"] == "Sandbox.Timedout"
    shutdown = wait_record(callback_server, lambda r: r["kind"] == "event"
                           and r["event"]["eventType"] == "SHUTDOWN")["event"]
    assert shutdown["shutdownReason"] == "timeout"


def test_stopping_flint_sends_shutdown_to_extensions_first(
        flint_bin, tmp_path, callback_server):
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log").start()
    try:
        client = srv.client()
        name = function_with_extension(client, callback_server)
        _, payload = invoke_json(client, name, {})
        assert payload == {"ok": True}
    finally:
        srv.stop()
    shutdown = wait_record(callback_server, lambda r: r["kind"] == "event"
                           and r["event"]["eventType"] == "SHUTDOWN", timeout=5)["event"]
    assert shutdown["shutdownReason"] == "spindown"


def test_extensions_run_in_isolated_environments(flint_bin, tmp_path):
    """An isolated environment's extensions register, take part in every invoke and receive
    telemetry at their listener on the environment's own loopback (Flint connects inside the
    namespace). The extension records to a file in /tmp, which the function reads back."""
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_args=("--function-network", "isolated")).start()
    handler = (
        "import os\n"
        "def handler(event, context):\n"
        "    print('hello from the function')\n"
        "    try:\n"
        "        with open('/tmp/recorder.jsonl') as f: return {'ok': True, 'seen': f.read()}\n"
        "    except FileNotFoundError: return {'ok': True, 'seen': ''}\n"
    )
    try:
        client = srv.client()
        name = unique_name("ext-iso")
        create_function(client, name, runtime="python3.12",
                        zip_bytes=make_zip({"index.py": handler}),
                        Layers=[extension_layer(client)], Timeout=10,
                        Environment={"Variables": {"RECORDER_FILE": "/tmp/recorder.jsonl"}})
        seen = []
        for _ in range(50):
            resp, payload = invoke_json(client, name, {}, LogType="Tail")
            assert payload["ok"] is True, payload
            seen = [json.loads(line) for line in payload["seen"].splitlines() if line]
            telemetry = [e for r in seen if r["kind"] == "telemetry" for e in r["events"]]
            if any(e["type"] == "function" and "hello from the function" in str(e["record"])
                   for e in telemetry):
                break
        else:
            pytest.fail(f"no function telemetry reached the extension: {seen}")
        subscribe = [r for r in seen if r["kind"] == "subscribe"]
        assert subscribe and subscribe[0]["status"] == 200, subscribe
        assert any(e["type"] == "platform.start" for e in telemetry), telemetry
        tail = base64.b64decode(resp["LogResult"]).decode()
        assert "hello from the function" in tail
    finally:
        srv.stop()


def test_an_extension_crashing_during_init_fails_it_with_extension_crash(
        lambda_client, callback_server):
    name = function_with_extension(lambda_client, callback_server, RECORDER_FAIL="crash")
    resp, payload = invoke_json(lambda_client, name, {}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Extension.Crash"
    assert payload["errorMessage"] == f"RequestId: {request_id(resp)} Error: exit status 3"
    tail = base64.b64decode(resp["LogResult"]).decode()
    assert "Status: error\tError Type: Extension.Crash" in tail
    assert "[recorder] crashing on purpose\n" in tail and "\x1e" not in tail


def test_an_extension_init_error_fails_init_with_its_error_type(lambda_client, callback_server):
    name = function_with_extension(lambda_client, callback_server, RECORDER_FAIL="init-error")
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Extension.ConfigInvalid"


def test_functions_without_extensions_find_the_extensions_api_empty(lambda_client):
    """A runtime that registers an internal extension after its init is refused as AWS does."""
    code = (
        "import json, os, urllib.request, urllib.error\n"
        "API = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API']\n"
        "def call(path, headers, method='POST', body=b'{}'):\n"
        "    req = urllib.request.Request(API + path, data=body, headers=headers, method=method)\n"
        "    try:\n"
        "        with urllib.request.urlopen(req) as r: return r.status, json.loads(r.read())\n"
        "    except urllib.error.HTTPError as e: return e.code, json.loads(e.read())\n"
        "def handler(event, context):\n"
        "    return {'late': call('/2020-01-01/extension/register', {'Lambda-Extension-Name': 'late'}),\n"
        "            'unknown': call('/2022-07-01/telemetry', {'Lambda-Extension-Identifier': 'nope'}, 'PUT')}\n"
    )
    name = unique_name("no-ext")
    create_function(lambda_client, name, runtime="python3.12",
                    zip_bytes=make_zip({"index.py": code}))
    _, payload = invoke_json(lambda_client, name, {})
    assert "late" in payload, payload
    status, body = payload["late"]
    assert status == 403 and body["errorType"] == "Extension.RegistrationClosed"
    status, body = payload["unknown"]
    assert status == 403 and body["errorType"] == "Extension.UnknownExtensionIdentifier"


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rust_extension() -> Path:
    """The `lambda-extension` crate's extension (tests/fixtures/rust-bootstrap/src/bin):
    `FLINT_RUST_EXTENSION`, else target/fixtures/release/extension, built when missing."""
    override = os.environ.get("FLINT_RUST_EXTENSION")
    if override:
        return Path(override)
    target = REPO / "target" / "fixtures"
    binary = target / "release" / "extension"
    if not binary.is_file():
        subprocess.run(
            ["cargo", "build", "--release", "--manifest-path",
             str(FIXTURES / "rust-bootstrap" / "Cargo.toml")],
            cwd=REPO, env=dict(os.environ, CARGO_TARGET_DIR=str(target)), check=True)
    return binary


def test_an_extension_built_with_awss_lambda_extension_crate_gets_events_and_telemetry(
        lambda_client, callback_server, rust_extension):
    """AWS's own client library parses every event and telemetry record into its typed schema:
    a record shaped differently from AWS's would not reach the report."""
    zip_bytes = make_zip({"extensions/rust-recorder": (rust_extension.read_bytes(), 0o755)})
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("rust-ext"), Content={"ZipFile": zip_bytes})["LayerVersionArn"]
    name = unique_name("rust-ext-fn")
    create_function(
        lambda_client, name, runtime="python3.12", zip_bytes=make_zip({"index.py": HANDLER}),
        Layers=[layer], Timeout=10,
        Environment={"Variables": {"RECORDER_URL": callback_server.url,
                                   "EXT_TELEMETRY_PORT": str(free_port())}})
    resp, payload = invoke_json(lambda_client, name, {})
    assert payload == {"ok": True}
    rid = request_id(resp)
    inv = wait_record(callback_server, lambda r: r["kind"] == "event"
                      and r["eventType"] == "INVOKE")
    assert inv["requestId"] == rid and inv["invokedFunctionArn"].endswith(f":function:{name}")

    def seen(kind, ident=None):
        return wait_record(callback_server, lambda r: r["kind"] == "telemetry" and any(
            e["type"] == kind and (ident is None or e["id"] == ident) for e in r["events"]))

    seen("platform.initStart")
    seen("platform.initRuntimeDone")
    seen("platform.initReport")
    seen("platform.extension", "rust-recorder")
    seen("platform.telemetrySubscription", "rust-recorder")
    seen("platform.start", rid)
    # AWS's spans: the event handed over -> the response began -> the response arrived.
    seen("platform.runtimeDone:responseLatency,responseDuration", rid)
    seen("platform.report:128", rid)
    wait_record(callback_server, lambda r: r["kind"] == "telemetry" and any(
        e["type"] == "function" and "hello from the function" in e["id"] for e in r["events"]))

    lambda_client.update_function_configuration(FunctionName=name, Description="changed")
    shutdown = wait_record(callback_server, lambda r: r["kind"] == "event"
                           and r["eventType"] == "SHUTDOWN")
    assert shutdown["shutdownReason"] == "spindown"


def test_a_logs_api_extension_built_with_awss_crate_gets_the_logs_apis_records(
        lambda_client, callback_server, rust_extension):
    """The Logs API (2020-08-15) has its own, older schema; the `lambda-extension` crate rejects
    a whole batch holding a record it does not know (the Telemetry API's Init records)."""
    zip_bytes = make_zip({"extensions/rust-logs": (rust_extension.read_bytes(), 0o755)})
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("rust-logs"), Content={"ZipFile": zip_bytes})["LayerVersionArn"]
    name = unique_name("rust-logs-fn")
    create_function(
        lambda_client, name, runtime="python3.12", zip_bytes=make_zip({"index.py": HANDLER}),
        Layers=[layer], Timeout=10,
        Environment={"Variables": {"RECORDER_URL": callback_server.url, "EXT_API": "logs",
                                   "EXT_TELEMETRY_PORT": str(free_port())}})
    resp, payload = invoke_json(lambda_client, name, {})
    assert payload == {"ok": True}
    rid = request_id(resp)

    def seen(kind, ident=None):
        return wait_record(callback_server, lambda r: r["kind"] == "logs" and any(
            e["type"] == kind and (ident is None or e["id"] == ident) for e in r["events"]))

    seen("platform.logsSubscription", "rust-logs")
    seen("platform.start", rid)
    seen("platform.runtimeDone", rid)
    seen("platform.end", rid)
    seen("platform.report", rid)
    wait_record(callback_server, lambda r: r["kind"] == "logs" and any(
        e["type"] == "function" and "hello from the function" in e["id"] for e in r["events"]))


@pytest.fixture
def callback_server():
    """One per test: each test reads only its own extension's reports."""
    srv = CallbackServer()
    yield srv
    srv.close()
