"""Limits an invoke runs into, answered as AWS Lambda answers them: the function timeout
(`Sandbox.Timedout`), the memory limit (the runtime is killed: `Runtime.OutOfMemory`), a runtime
that exits or is killed (`Runtime.ExitError`), code that cannot start (`Runtime.InvalidEntrypoint`,
`Runtime.ImportModuleError`), and the payload limits (6 MB each way for RequestResponse, 1 MB for
Event). Payloads and messages are those recorded against real AWS (test_lambda.snapshot.json)."""

import base64
import json
import re
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import (
    client_error,
    create_function,
    invoke_json,
    make_zip,
    request_id,
    unique_name,
    wait_active,
)

# One handler for every function of this module: the event names what to do.
PROBE = '''
import os, signal, time

INVOCATIONS = 0


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    action = event.get("action") if isinstance(event, dict) else None
    if action == "count":
        return {"count": INVOCATIONS}
    if action == "sleep":
        time.sleep(event["seconds"])
        return {"slept": event["seconds"]}
    if action == "exit":
        os._exit(event["code"])
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "alloc":
        # Touch every page, so that the memory is really resident.
        block = bytearray(event["mb"] * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return {"allocated_mb": event["mb"]}
    if action == "write_tmp":
        with open("/tmp/" + event["file"], "w") as f:
            f.write(event["content"])
        return {"written": True}
    if action == "read_tmp":
        try:
            with open("/tmp/" + event["file"]) as f:
                return {"content": f.read()}
        except OSError:
            return {"content": None}
    if action == "size":
        return {"length": len(event["data"])}
    if action == "echo_data":
        return event["data"]
    if action == "big_response":
        return "x" * event["bytes"]
    if action == "memory":
        return {"env": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
                "context": context.memory_limit_in_mb}
    return event
'''

MB = 1024 * 1024
# Lambda's limits, as its error messages state them.
SYNC_REQUEST_LIMIT = 6291456
ASYNC_REQUEST_LIMIT = 1048576

REPORT = re.compile(
    r"REPORT RequestId: (?P<rid>[0-9a-f-]{36})\tDuration: (?P<duration>\d+\.\d{2}) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<size>\d+) MB\t"
    r"Max Memory Used: (?P<used>\d+) MB\t")


def probe_zip():
    return make_zip({"index.py": PROBE})


def tail(resp) -> str:
    return base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")


def report_of(log: str, rid: str) -> re.Match:
    for match in REPORT.finditer(log):
        if match.group("rid") == rid:
            return match
    raise AssertionError(f"no REPORT line for {rid} in:\n{log}")


@pytest.fixture(scope="module")
def probe(lambda_client):
    """128 MB, 10 s: the default-sized function."""
    name = unique_name("limits")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=10, wait=False)
    return name


@pytest.fixture(scope="module")
def one_second(lambda_client):
    """Timeout=1."""
    name = unique_name("limits-1s")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=1, wait=False)
    return name


@pytest.fixture(scope="module")
def large(lambda_client):
    """MemorySize=512."""
    name = unique_name("limits-512")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=10, MemorySize=512,
                    wait=False)
    return name


@pytest.fixture
def fresh(lambda_client):
    """A function of its own for a test that breaks its environment."""
    def make(**extra):
        name = unique_name("limits-own")
        create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=10, **extra)
        return name
    return make


def ready(client, name):
    wait_active(client, name)
    return name


# ---------------------------------------------------------------------------------------------
# Timeout
# ---------------------------------------------------------------------------------------------

def test_timeout_gives_sandbox_timedout_with_the_recorded_payload(lambda_client, one_second):
    ready(lambda_client, one_second)
    started = time.monotonic()
    resp, payload = invoke_json(lambda_client, one_second, {"action": "sleep", "seconds": 3})
    elapsed = time.monotonic() - started
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    assert payload == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Task timed out after 1.00 seconds",
    }
    assert 0.9 < elapsed < 2.5, f"Timeout=1 answered after {elapsed:.2f}s"


def test_timeout_restarts_the_runtime_but_keeps_tmp(lambda_client, one_second, server):
    if "/tmp size as a whole" not in server.log_path.read_text(errors="replace"):
        pytest.skip("this host has no /tmp volume to hand to the restarted runtime")
    # Recorded on AWS (test_lambda_invoke_timed_out_environment_reuse): after a timeout the next
    # invoke sees module state reset (a new runtime process) but the file written to /tmp before
    # the timeout is still there (the same execution environment).
    ready(lambda_client, one_second)
    name = f"t-{uuid.uuid4().hex}"
    invoke_json(lambda_client, one_second, {"action": "count"})
    assert invoke_json(lambda_client, one_second, {"action": "count"})[1]["count"] >= 2
    _, written = invoke_json(lambda_client, one_second,
                             {"action": "write_tmp", "file": name, "content": "some-content"})
    assert written == {"written": True}
    resp, _ = invoke_json(lambda_client, one_second, {"action": "sleep", "seconds": 3})
    assert resp["FunctionError"] == "Unhandled"
    _, count = invoke_json(lambda_client, one_second, {"action": "count"})
    assert count == {"count": 1}, "module state must not survive a timeout"
    _, read = invoke_json(lambda_client, one_second, {"action": "read_tmp", "file": name})
    assert read == {"content": "some-content"}


def test_timeout_is_logged_with_status_timeout(lambda_client, one_second):
    ready(lambda_client, one_second)
    resp, _ = invoke_json(lambda_client, one_second, {"action": "sleep", "seconds": 3},
                          LogType="Tail")
    rid = request_id(resp)
    log = tail(resp)
    assert re.search(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {rid} "
                     r"Task timed out after 1\.00 seconds", log), log
    assert f"END RequestId: {rid}" in log
    report = report_of(log, rid)
    assert float(report.group("duration")) >= 990
    line = log[report.start():].splitlines()[0]
    assert "Status: timeout" in line, line


def test_default_timeout_is_3_seconds(lambda_client):
    name = unique_name("limits-default")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    resp, payload = invoke_json(lambda_client, name, {"action": "sleep", "seconds": 5})
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Task timed out after 3.00 seconds",
    }


def test_node_function_timeout_has_the_same_payload(lambda_client):
    name = unique_name("limits-node")
    create_function(lambda_client, name, runtime="nodejs20.x", Timeout=1, zip_bytes=make_zip({
        "index.js": "exports.handler = async () => {\n"
                    "  await new Promise((r) => setTimeout(r, 3000));\n"
                    "  return 'late';\n};\n"}))
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Task timed out after 1.00 seconds",
    }


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------

def test_allocating_beyond_memory_size_kills_the_runtime(lambda_client, fresh):
    name = fresh()
    resp, payload = invoke_json(lambda_client, name, {"action": "alloc", "mb": 300},
                                LogType="Tail")
    rid = request_id(resp)
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] in ("Runtime.OutOfMemory", "Runtime.ExitError"), payload
    assert payload["errorMessage"] == \
        f"RequestId: {rid} Error: Runtime exited with error: signal: killed"
    report = report_of(tail(resp), rid)
    assert report.group("size") == "128"
    assert 100 <= int(report.group("used")) <= 130, report.group(0)
    # The next invoke gets a working (new) runtime.
    resp, payload = invoke_json(lambda_client, name, {"action": "count"})
    assert "FunctionError" not in resp and payload == {"count": 1}


def test_max_memory_used_covers_what_the_function_allocated(lambda_client, probe):
    ready(lambda_client, probe)
    resp, payload = invoke_json(lambda_client, probe, {"action": "alloc", "mb": 70},
                                LogType="Tail")
    assert payload == {"allocated_mb": 70}
    report = report_of(tail(resp), request_id(resp))
    assert 70 <= int(report.group("used")) <= 128, report.group(0)


def test_memory_size_is_the_limit(lambda_client, large):
    ready(lambda_client, large)
    resp, payload = invoke_json(lambda_client, large, {"action": "alloc", "mb": 300},
                                LogType="Tail")
    assert "FunctionError" not in resp, payload
    assert payload == {"allocated_mb": 300}
    report = report_of(tail(resp), request_id(resp))
    assert report.group("size") == "512"
    assert 300 <= int(report.group("used")) <= 512
    _, memory = invoke_json(lambda_client, large, {"action": "memory"})
    assert memory == {"env": "512", "context": "512"}


# ---------------------------------------------------------------------------------------------
# Runtimes that die or cannot start
# ---------------------------------------------------------------------------------------------

def test_runtime_exiting_with_a_status_is_an_exit_error(lambda_client, fresh):
    name = fresh()
    assert invoke_json(lambda_client, name, {"action": "count"})[1] == {"count": 1}
    resp, payload = invoke_json(lambda_client, name, {"action": "exit", "code": 3})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Runtime exited with error: "
                        "exit status 3",
    }
    # A new runtime serves the next invoke: module state starts again.
    resp, payload = invoke_json(lambda_client, name, {"action": "count"})
    assert "FunctionError" not in resp and payload == {"count": 1}


def test_runtime_exiting_with_status_0_gives_no_reason(lambda_client, fresh):
    # Recorded: test_lambda_handler_exit.
    name = fresh()
    resp, payload = invoke_json(lambda_client, name, {"action": "exit", "code": 0})
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Runtime exited without "
                        "providing a reason",
    }


def test_runtime_killed_by_a_signal_is_an_exit_error(lambda_client, fresh):
    name = fresh()
    resp, payload = invoke_json(lambda_client, name, {"action": "kill"}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Runtime exited with error: "
                        "signal: killed",
    }
    report_of(tail(resp), request_id(resp))
    assert invoke_json(lambda_client, name, {"action": "count"})[1] == {"count": 1}


def test_provided_runtime_without_bootstrap_is_an_invalid_entrypoint(lambda_client):
    name = unique_name("nobootstrap")
    create_function(lambda_client, name, runtime="provided.al2023", handler="function.handler",
                    zip_bytes=make_zip({"function.sh": "echo not a bootstrap\n"}))
    resp, payload = invoke_json(lambda_client, name, {}, LogType="Tail")
    rid = request_id(resp)
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": f"RequestId: {rid} Error: Couldn't find valid bootstrap(s): "
                        "[/var/task/bootstrap /opt/bootstrap]",
    }
    # Every invocation ends with its REPORT line, failed ones too.
    report_of(tail(resp), rid)


def test_bootstrap_that_is_not_executable_is_an_invalid_entrypoint(lambda_client):
    name = unique_name("noexec")
    create_function(lambda_client, name, runtime="provided.al2", handler="x",
                    zip_bytes=make_zip({"bootstrap": ("#!/bin/sh\necho hi\n", 0o644)}))
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": f"RequestId: {request_id(resp)} Error: fork/exec /var/task/bootstrap: "
                        "permission denied",
    }


def test_import_error_is_reported_and_init_is_retried_on_the_next_invoke(
        lambda_client, callback_server):
    token = uuid.uuid4().hex
    # Module code runs at every init attempt: it reports to the callback server, then fails.
    code = (
        "import json, urllib.request\n"
        f"urllib.request.urlopen(urllib.request.Request({callback_server.url!r}, "
        f"data=json.dumps({{'init': {token!r}}}).encode(), method='POST'), timeout=5).read()\n"
        "import flint_module_that_does_not_exist\n"
        "def handler(event, context):\n"
        "    return 'unreachable'\n")
    name = unique_name("importerror")
    create_function(lambda_client, name, zip_bytes=make_zip({"index.py": code}))
    for _ in range(2):
        resp, payload = invoke_json(lambda_client, name, {})
        assert resp["StatusCode"] == 200
        assert resp["FunctionError"] == "Unhandled"
        assert payload["errorType"] == "Runtime.ImportModuleError"
        assert payload["errorMessage"] == \
            "Unable to import module 'index': No module named 'flint_module_that_does_not_exist'"
        assert payload["stackTrace"] == []
    attempts = [body for body in list(callback_server.received) if token in body]
    assert len(attempts) >= 2, "a failed init must be attempted again on the next invoke"
    # Fixing the code makes the function work.
    fixed = make_zip({"index.py": "def handler(e, c):\n    return 'fixed'\n"})
    lambda_client.update_function_code(FunctionName=name, ZipFile=fixed)
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {})
    assert "FunctionError" not in resp and payload == "fixed"


# ---------------------------------------------------------------------------------------------
# Payload limits
# ---------------------------------------------------------------------------------------------

def test_5mb_request_and_5mb_response_work(lambda_client, probe):
    ready(lambda_client, probe)
    data = "q" * (5 * MB)
    resp, payload = invoke_json(lambda_client, probe, {"action": "size", "data": data})
    assert "FunctionError" not in resp and payload == {"length": len(data)}
    resp, payload = invoke_json(lambda_client, probe, {"action": "echo_data", "data": data})
    assert "FunctionError" not in resp
    assert len(resp["RawPayload"]) == len(data) + 2
    assert payload == data


def test_request_over_6mb_is_rejected_with_413(raw_client, probe):
    body = json.dumps({"action": "size", "data": "z" * (6 * MB + 1024)}).encode()
    with pytest.raises(ClientError) as excinfo:
        raw_client.invoke(FunctionName=probe, Payload=body)
    err = client_error(excinfo)
    assert err["status"] == 413
    assert err["code"] == "RequestEntityTooLargeException"
    assert err["message"] == \
        f"Request must be smaller than {SYNC_REQUEST_LIMIT} bytes for the InvokeFunction operation"


def test_response_over_6mb_is_function_response_size_too_large(lambda_client, probe):
    ready(lambda_client, probe)
    resp, payload = invoke_json(lambda_client, probe,
                                {"action": "big_response", "bytes": 6 * MB + 300})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    assert payload == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
                        "(6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    resp, payload = invoke_json(lambda_client, probe, {"after": "too large"})
    assert "FunctionError" not in resp and payload == {"after": "too large"}


def test_event_payload_over_1mb_is_rejected_with_413(lambda_client, probe):
    body = json.dumps({"action": "size", "data": "e" * ASYNC_REQUEST_LIMIT}).encode()
    with pytest.raises(ClientError) as excinfo:
        lambda_client.invoke(FunctionName=probe, InvocationType="Event", Payload=body)
    err = client_error(excinfo)
    assert err["status"] == 413
    assert err["code"] == "RequestEntityTooLargeException"
    assert err["message"] == (f"{len(body)} byte payload is too large for the Event invocation "
                              f"type (limit {ASYNC_REQUEST_LIMIT} bytes)")


def test_event_payload_under_1mb_is_accepted(lambda_client, probe):
    ready(lambda_client, probe)
    body = json.dumps({"action": "size", "data": "e" * (ASYNC_REQUEST_LIMIT - 4096)}).encode()
    resp = lambda_client.invoke(FunctionName=probe, InvocationType="Event", Payload=body)
    assert resp["StatusCode"] == 202


# ---------------------------------------------------------------------------------------------
# EphemeralStorage: /tmp is limited as a whole, on disk (not out of MemorySize)
# ---------------------------------------------------------------------------------------------

import os  # noqa: E402  (only this section needs it)

TMP_FILLER = '''
import os


def handler(event, context):
    chunk = b"\\0" * (1024 * 1024)
    for n in range(event["files"]):
        with open(f"/tmp/part{n}", "wb") as f:
            for _ in range(event["mb_each"]):
                f.write(chunk)
    total = sum(os.path.getsize("/tmp/" + p) for p in os.listdir("/tmp"))
    for p in os.listdir("/tmp"):
        os.remove("/tmp/" + p)
    return {"total_mb": total // (1024 * 1024)}
'''


def fill_tmp(lambda_client, ephemeral_mb: int) -> tuple:
    """600 MB into /tmp as six 100 MB files, by a 128 MB function with `ephemeral_mb` of /tmp."""
    name = unique_name(f"limits-tmp{ephemeral_mb}")
    create_function(lambda_client, name, zip_bytes=make_zip({"index.py": TMP_FILLER}),
                    Timeout=60, MemorySize=128, EphemeralStorage={"Size": ephemeral_mb})
    return invoke_json(lambda_client, name, {"files": 6, "mb_each": 100})


@pytest.mark.skipif(os.geteuid() != 0, reason="/tmp is limited as a whole only when Flint is root")
def test_ephemeral_storage_512_cannot_hold_600mb_in_several_files(lambda_client, server):
    # Hosts without loop devices or mkfs.btrfs fall back to a per-file limit (the banner says so).
    if "/tmp size as a whole" not in server.log_path.read_text(errors="replace"):
        pytest.skip("this host limits /tmp per file only (no btrfs volume): " + server.log_tail(400))
    resp, payload = fill_tmp(lambda_client, 512)
    assert resp["FunctionError"] == "Unhandled", payload
    assert payload["errorType"] == "OSError"
    # Lambda says ENOSPC; Flint's per-environment quota says EDQUOT.
    assert ("No space left on device" in payload["errorMessage"]
            or "Disk quota exceeded" in payload["errorMessage"]), payload


def test_ephemeral_storage_1024_holds_600mb_beyond_memory_size(lambda_client):
    resp, payload = fill_tmp(lambda_client, 1024)
    assert "FunctionError" not in resp, payload
    assert payload == {"total_mb": 600}
