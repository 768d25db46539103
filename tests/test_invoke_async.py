"""Asynchronous invokes as AWS Lambda runs them: `InvocationType: Event` answers 202 at once and the
function runs in the background with the event as sent, the request id the caller got, and the
version asked for; throttled events wait for capacity instead of failing; the deprecated
`InvokeAsync` answers `202 {"Status": 202}`; and accepted events survive a server crash (they are
durable before the 202) and run after the restart."""

import json
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    FlintServer,
    client_error,
    create_function,
    invoke_json,
    make_zip,
    unique_name,
    wait_active,
)

PROBE = '''
import json, os, time, urllib.request

CODE = {code!r}


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def handler(event, context):
    if "started_url" in event:
        post(event["started_url"], {{"started": event["started_token"]}})
    time.sleep(event.get("sleep", 0))
    if "url" in event:
        body = {{
            "token": event.get("token"),
            "event": event,
            "code": CODE,
            "request_id": context.aws_request_id,
            "invoked_arn": context.invoked_function_arn,
            "version": context.function_version,
        }}
        post(event["url"], body)
    if event.get("fail"):
        raise RuntimeError("async failure")
    return {{"code": CODE}}
'''


def probe_zip(code="v1"):
    return make_zip({"index.py": PROBE.format(code=code)})


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def hold_the_only_slot(client, name, callback_server, seconds):
    """Starts a sync invoke sleeping `seconds` in a thread; returns once it is running."""
    token = uuid.uuid4().hex
    event = {"sleep": seconds, "started_url": callback_server.url, "started_token": token}

    def run():
        try:
            invoke_json(client, name, event)
        except Exception:  # the server may be killed under this request on purpose
            pass

    holder = threading.Thread(target=run, daemon=True)
    holder.start()
    assert callback_server.wait_for(lambda b: token in b, timeout=15) is not None, \
        "the holding invoke never started"
    return holder


def report(callback_server, token, timeout=20):
    """The callback the function made for `token`, decoded (None if it never came)."""
    body = callback_server.wait_for(lambda b: token in b, timeout=timeout)
    return json.loads(body) if body is not None else None


@pytest.fixture(scope="module")
def async_fn(lambda_client):
    name = unique_name("async")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=30)
    return name


def test_event_invoke_answers_202_and_runs_the_function(lambda_client, async_fn,
                                                        callback_server):
    token = uuid.uuid4().hex
    event = {"url": callback_server.url, "token": token, "nested": {"list": [1, "two", None]},
             "unicode": "héllo ✓"}
    resp = lambda_client.invoke(FunctionName=async_fn, InvocationType="Event",
                                Payload=json.dumps(event))
    # Recorded (test_invocation_type_event): 202, empty payload, no ExecutedVersion.
    assert resp["StatusCode"] == 202
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert resp["Payload"].read() == b""
    assert "FunctionError" not in resp
    assert "ExecutedVersion" not in resp
    got = report(callback_server, token)
    assert got is not None, "the Event invoke never ran"
    assert got["event"] == event
    # The request id the caller got is the invocation's.
    assert got["request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert got["invoked_arn"] == arn(async_fn)
    assert got["version"] == "$LATEST"


def test_event_invokes_run_concurrently_in_the_background(lambda_client, async_fn,
                                                          callback_server):
    tokens = [uuid.uuid4().hex for _ in range(3)]
    started = time.monotonic()
    for token in tokens:
        resp = lambda_client.invoke(
            FunctionName=async_fn, InvocationType="Event",
            Payload=json.dumps({"url": callback_server.url, "token": token, "sleep": 1.5}))
        assert resp["StatusCode"] == 202
    assert time.monotonic() - started < 1.5, "Event invokes must not wait for the function"
    for token in tokens:
        assert report(callback_server, token) is not None, token
    # Three 1.5 s events done well before 4.5 s: they ran side by side.
    assert time.monotonic() - started < 4.4


def test_event_invoke_of_a_version_runs_that_version(lambda_client, callback_server):
    name = unique_name("async-ver")
    create_function(lambda_client, name, zip_bytes=probe_zip("v1"))
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_code(FunctionName=name, ZipFile=probe_zip("v2"))
    wait_active(lambda_client, name)
    lambda_client.create_alias(FunctionName=name, Name="stable", FunctionVersion="1")
    for qualifier, code, version in (("1", "v1", "1"), ("stable", "v1", "1"),
                                     ("$LATEST", "v2", "$LATEST")):
        token = uuid.uuid4().hex
        resp = lambda_client.invoke(FunctionName=name, Qualifier=qualifier,
                                    InvocationType="Event",
                                    Payload=json.dumps({"url": callback_server.url,
                                                        "token": token}))
        assert resp["StatusCode"] == 202
        got = report(callback_server, token)
        assert got is not None, qualifier
        assert (got["code"], got["version"]) == (code, version), qualifier
        assert got["invoked_arn"] == arn(name, qualifier)


def test_failing_event_invoke_still_answers_202(lambda_client, async_fn, callback_server):
    token = uuid.uuid4().hex
    resp = lambda_client.invoke(
        FunctionName=async_fn, InvocationType="Event",
        Payload=json.dumps({"url": callback_server.url, "token": token, "fail": True}))
    assert resp["StatusCode"] == 202
    assert "FunctionError" not in resp
    assert report(callback_server, token) is not None


def test_event_invoke_of_an_unknown_function_is_404(lambda_client):
    name = unique_name("async-missing")
    with pytest.raises(ClientError) as excinfo:
        lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
    err = client_error(excinfo)
    assert err["status"] == 404
    assert err["code"] == "ResourceNotFoundException"
    # Recorded (test_invoke_exceptions): an unqualified invoke names $LATEST.
    assert err["message"] == f"Function not found: {arn(name)}:$LATEST"


def test_event_invoke_is_accepted_with_zero_reserved_concurrency(lambda_client):
    # Recorded (test_reserved_concurrency): a sync invoke is throttled (429) but an Event invoke
    # is still accepted with 202 (the throttle is handled by the async queue).
    name = unique_name("async-res0")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    resp = lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
    assert resp["StatusCode"] == 202


def test_throttled_event_waits_for_capacity_and_then_runs(lambda_client, callback_server):
    name = unique_name("async-res1")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=30)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    holder = hold_the_only_slot(lambda_client, name, callback_server, 2)
    try:
        token = uuid.uuid4().hex
        resp = lambda_client.invoke(
            FunctionName=name, InvocationType="Event",
            Payload=json.dumps({"url": callback_server.url, "token": token}))
        assert resp["StatusCode"] == 202
        assert report(callback_server, token, timeout=1.0) is None, \
            "the event ran beyond the function's reserved concurrency"
        assert report(callback_server, token, timeout=15) is not None, \
            "a throttled event must run once capacity is free"
    finally:
        holder.join(timeout=30)


def test_a_backlog_behind_a_busy_function_flows_as_soon_as_it_has_room(lambda_client,
                                                                        callback_server):
    # LocalStack's AWS-validated test_async_invoke_queue_upon_function_update: events queued
    # behind a reserved concurrency of 1 held by a long event invoke all ran soon after it ended.
    # Backing off each throttled event on its own (1, 2, 4, 8, 16 s...) takes minutes for eight.
    name = unique_name("async-backlog")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=30)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    started = uuid.uuid4().hex
    lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(
        {"sleep": 5, "started_url": callback_server.url, "started_token": started}))
    assert callback_server.wait_for(lambda b: started in b, timeout=15) is not None
    began = time.monotonic()
    tokens = [uuid.uuid4().hex for _ in range(8)]
    for token in tokens:
        lambda_client.invoke(FunctionName=name, InvocationType="Event",
                             Payload=json.dumps({"url": callback_server.url, "token": token}))
    for token in tokens:
        left = max(began + 5 + 6 - time.monotonic(), 0.1)
        assert report(callback_server, token, timeout=left) is not None, \
            f"an event queued behind the busy function had not run {time.monotonic() - began:.1f} s on"


# ---------------------------------------------------------------------------------------------
# InvokeAsync (deprecated)
# ---------------------------------------------------------------------------------------------

def test_invoke_async_answers_status_202_and_runs(lambda_client, async_fn, callback_server):
    token = uuid.uuid4().hex
    resp = lambda_client.invoke_async(
        FunctionName=async_fn,
        InvokeArgs=json.dumps({"url": callback_server.url, "token": token}))
    assert resp["Status"] == 202
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    got = report(callback_server, token)
    assert got is not None, "InvokeAsync never ran the function"
    assert got["event"]["token"] == token
    assert got["version"] == "$LATEST"


def test_invoke_async_of_an_unknown_function_is_404(lambda_client):
    name = unique_name("async-missing")
    with pytest.raises(ClientError) as excinfo:
        lambda_client.invoke_async(FunctionName=name, InvokeArgs=b"{}")
    err = client_error(excinfo)
    assert err["status"] == 404
    assert err["code"] == "ResourceNotFoundException"


# ---------------------------------------------------------------------------------------------
# Durability across a crash
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def own_server(flint_bin, tmp_path, request):
    servers = []

    def start(port=None):
        srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log", port=port)
        servers.append(srv)
        srv.start()
        request.node._flint_server = srv
        request.node._flint_log_start = 0
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_pending_events_run_after_a_crash_and_restart(own_server, callback_server):
    first = own_server()
    client = first.client()
    name = unique_name("async-durable")
    create_function(client, name, zip_bytes=probe_zip(), Timeout=30)
    # Reserved concurrency 1, held by a long sync invoke: the events below stay queued.
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    hold_the_only_slot(client, name, callback_server, 10)
    tokens = [uuid.uuid4().hex for _ in range(2)]
    for token in tokens:
        resp = client.invoke(FunctionName=name, InvocationType="Event",
                             Payload=json.dumps({"url": callback_server.url, "token": token}))
        assert resp["StatusCode"] == 202
    assert report(callback_server, tokens[0], timeout=0.5) is None

    first.kill()  # SIGKILL: the accepted events are only on disk now
    own_server()  # the same data dir
    for token in tokens:
        assert report(callback_server, token, timeout=20) is not None, \
            "an accepted Event invoke was lost in the crash"

