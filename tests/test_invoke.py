"""Invoke as AWS Lambda answers it: RequestResponse (200 + payload), Event (202, runs in the
background), DryRun (204); every form of FunctionName; function errors (`FunctionError:
Unhandled` and the runtime's error payload); `LogType: Tail`; timeouts; warm reuse; concurrency."""

import base64
import concurrent.futures
import json
import re
import time
import uuid

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    create_function,
    invoke_json,
    request_id,
    unique_name,
)


def arn(name):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


@pytest.mark.parametrize("event", [
    {"hello": "world", "nested": {"list": [1, 2.5, None, True]}},
    {"unicode": "héllo wörld ✓ 日本"},
    "just a string",
    12345,
    [1, "two", {"three": 3}],
    None,
    {},
])
def test_request_response_returns_the_handler_result(lambda_client, python_fn, event):
    resp, payload = invoke_json(lambda_client, python_fn, event)
    assert resp["StatusCode"] == 200
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp
    assert payload == event


def test_explicit_request_response_type_and_headers(lambda_client, python_fn):
    resp, payload = invoke_json(lambda_client, python_fn, {"a": 1},
                                InvocationType="RequestResponse")
    assert (resp["StatusCode"], payload) == (200, {"a": 1})
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-executed-version"] == "$LATEST"
    assert re.match(r"^[0-9a-f-]{36}$", headers["x-amzn-requestid"])


def test_handler_returning_none_gives_null(lambda_client, python_fn):
    resp, _ = invoke_json(lambda_client, python_fn, {"action": "return_none"})
    assert resp["StatusCode"] == 200
    assert resp["RawPayload"] == b"null"


@pytest.mark.parametrize("form", ["name", "arn", "partial", "name:$LATEST", "arn:$LATEST",
                                  "partial:$LATEST", "qualifier"])
def test_function_name_forms(lambda_client, python_fn, form):
    kwargs = {}
    name = {
        "name": python_fn,
        "arn": arn(python_fn),
        "partial": f"{DEFAULT_ACCOUNT}:function:{python_fn}",
        "name:$LATEST": f"{python_fn}:$LATEST",
        "arn:$LATEST": f"{arn(python_fn)}:$LATEST",
        "partial:$LATEST": f"{DEFAULT_ACCOUNT}:function:{python_fn}:$LATEST",
        "qualifier": python_fn,
    }[form]
    if form == "qualifier":
        kwargs["Qualifier"] = "$LATEST"
    resp, payload = invoke_json(lambda_client, name, {"form": form}, **kwargs)
    assert resp["StatusCode"] == 200
    assert payload == {"form": form}
    assert resp["ExecutedVersion"] == "$LATEST"


def test_invoked_function_arn_is_the_arn_the_caller_used(lambda_client, python_fn):
    _, ctx = invoke_json(lambda_client, python_fn, {"action": "context"})
    assert ctx["invoked_function_arn"] == arn(python_fn)
    _, ctx = invoke_json(lambda_client, python_fn, {"action": "context"}, Qualifier="$LATEST")
    assert ctx["invoked_function_arn"] == f"{arn(python_fn)}:$LATEST"


def test_event_invoke_is_accepted_with_202_and_runs_in_background(
        lambda_client, python_fn, callback_server):
    token = uuid.uuid4().hex
    started = time.monotonic()
    resp = lambda_client.invoke(
        FunctionName=python_fn, InvocationType="Event",
        Payload=json.dumps({"action": "callback", "url": callback_server.url, "token": token}))
    assert resp["StatusCode"] == 202
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert resp["Payload"].read() == b""
    assert "FunctionError" not in resp
    got = callback_server.wait_for(lambda body: token in body, timeout=20)
    assert got is not None, "the Event invoke never ran the function"
    assert time.monotonic() - started < 20


def test_event_invoke_returns_before_the_function_finishes(lambda_client, python_fn):
    started = time.monotonic()
    resp = lambda_client.invoke(FunctionName=python_fn, InvocationType="Event",
                                Payload=json.dumps({"action": "sleep", "seconds": 2}))
    assert resp["StatusCode"] == 202
    assert time.monotonic() - started < 1.5


def test_dry_run_answers_204_without_running(lambda_client, python_fn, callback_server):
    token = uuid.uuid4().hex
    resp = lambda_client.invoke(
        FunctionName=python_fn, InvocationType="DryRun",
        Payload=json.dumps({"action": "callback", "url": callback_server.url, "token": token}))
    assert resp["StatusCode"] == 204
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert resp["Payload"].read() == b""
    assert callback_server.wait_for(lambda body: token in body, timeout=1.5) is None


def test_unhandled_python_error_gives_function_error_and_aws_error_payload(lambda_client):
    # python3.13's runtime includes the requestId in the error payload (recorded on AWS).
    name = unique_name("pyerror")
    create_function(lambda_client, name, runtime="python3.13")
    resp, payload = invoke_json(lambda_client, name, {"action": "error", "message": "kaboom"})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-function-error"] == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    assert payload["errorMessage"] == "kaboom"
    assert payload["errorType"] == "Exception"
    assert isinstance(payload["stackTrace"], list) and payload["stackTrace"]
    assert any("/var/task/index.py" in line and "in handler" in line
               for line in payload["stackTrace"]), payload["stackTrace"]
    assert payload["requestId"] == request_id(resp)


def test_the_function_still_works_after_an_unhandled_error(lambda_client, python_fn):
    resp, _ = invoke_json(lambda_client, python_fn, {"action": "error", "message": "once"})
    assert resp["FunctionError"] == "Unhandled"
    resp, payload = invoke_json(lambda_client, python_fn, {"after": "error"})
    assert "FunctionError" not in resp and payload == {"after": "error"}


def test_error_while_importing_the_handler_module_is_reported(lambda_client):
    from conftest import make_zip

    name = unique_name("initerror")
    create_function(lambda_client, name, zip_bytes=make_zip({
        "index.py": "raise Exception('Runtime startup fails')\n"}))
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorMessage"] == "Runtime startup fails"
    assert payload["errorType"] == "Exception"
    assert isinstance(payload["stackTrace"], list)


def test_missing_handler_function_is_reported(lambda_client):
    from conftest import make_zip

    name = unique_name("nohandler")
    create_function(lambda_client, name, handler="index.nothere",
                    zip_bytes=make_zip({"index.py": "x = 1\n"}))
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.HandlerNotFound"
    assert payload["errorMessage"] == "Handler 'nothere' missing on module 'index'"


def test_log_type_tail_returns_the_last_4kb_of_log_as_base64(lambda_client, python_fn):
    marker = f"marker-{uuid.uuid4().hex}"
    resp, payload = invoke_json(lambda_client, python_fn, {"action": "print", "text": marker},
                                LogType="Tail")
    assert payload == {"printed": True}
    raw = base64.b64decode(resp["LogResult"])
    assert len(raw) <= 4096
    log = raw.decode("utf-8", "replace")
    rid = request_id(resp)
    assert marker in log
    assert f"START RequestId: {rid} Version: $LATEST" in log
    assert f"END RequestId: {rid}" in log
    report = re.search(
        rf"REPORT RequestId: {rid}\tDuration: \d+(\.\d+)? ms\tBilled Duration: \d+ ms\t"
        rf"Memory Size: 128 MB\tMax Memory Used: \d+ MB", log)
    assert report, log
    # Lines come in order: START, the function's output, END, REPORT.
    assert log.index("START RequestId") < log.index(marker) < log.index("END RequestId") \
        < log.index("REPORT RequestId")


def test_log_result_is_absent_without_log_type_tail(lambda_client, python_fn):
    resp, _ = invoke_json(lambda_client, python_fn, {"x": 1})
    assert "LogResult" not in resp


def test_long_log_tail_is_capped_at_4kb(lambda_client, python_fn):
    text = "y" * 10000
    resp, _ = invoke_json(lambda_client, python_fn, {"action": "print", "text": text},
                          LogType="Tail")
    raw = base64.b64decode(resp["LogResult"])
    assert 0 < len(raw) <= 4096
    assert b"REPORT RequestId" in raw  # the tail, so the end is kept


def test_timeout_kills_the_invoke_with_aws_message(lambda_client):
    name = unique_name("timeout")
    create_function(lambda_client, name, Timeout=1)
    started = time.monotonic()
    resp, payload = invoke_json(lambda_client, name, {"action": "sleep", "seconds": 5})
    elapsed = time.monotonic() - started
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"] == \
        f"RequestId: {request_id(resp)} Error: Task timed out after 1.00 seconds"
    assert elapsed < 4, f"timeout of 1s took {elapsed:.1f}s"
    # A fresh environment serves the next invoke.
    resp, payload = invoke_json(lambda_client, name, {"after": "timeout"})
    assert "FunctionError" not in resp and payload == {"after": "timeout"}


def test_warm_environment_is_reused_between_invokes(lambda_client):
    name = unique_name("warm")
    create_function(lambda_client, name)
    counts = [invoke_json(lambda_client, name, {"action": "count"})[1] for _ in range(4)]
    assert [c["count"] for c in counts] == [1, 2, 3, 4]
    assert len({c["cold_start_at"] for c in counts}) == 1


def test_configuration_update_starts_a_fresh_environment(lambda_client):
    from conftest import wait_active

    name = unique_name("retire")
    create_function(lambda_client, name)
    assert invoke_json(lambda_client, name, {"action": "count"})[1]["count"] == 1
    assert invoke_json(lambda_client, name, {"action": "count"})[1]["count"] == 2
    lambda_client.update_function_configuration(FunctionName=name, Description="new env")
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {"action": "count"})[1]["count"] == 1


def test_concurrent_invokes_all_succeed_in_parallel(lambda_client):
    name = unique_name("concurrent")
    create_function(lambda_client, name, Timeout=30)
    n = 6

    def one(i):
        return invoke_json(lambda_client, name, {"action": "sleep", "seconds": 1})

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    elapsed = time.monotonic() - started
    for resp, payload in results:
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
        assert payload["slept"] == 1
    # Serially that would be >= 6 s; in parallel environments it is about one sleep plus starts.
    assert elapsed < 4.5, f"{n} concurrent 1 s invokes took {elapsed:.1f}s"


def test_payload_just_under_6mb_is_accepted(lambda_client, python_fn):
    data = "z" * (6 * 1024 * 1024 - 1024)
    resp, payload = invoke_json(lambda_client, python_fn, {"action": "size", "data": data})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert payload == {"length": len(data)}


def test_a_response_near_6mb_arrives_whole_and_in_order(lambda_client, python_fn):
    # ~5.9 MB in and out: the response reaches the caller as the chunks the runtime's connection
    # delivered (dozens), never gathered; each element numbered so a lost, repeated or reordered
    # chunk shows.
    event = [f"{i:08d}" + "-xyz" * 25 for i in range(53_500)]
    raw = json.dumps(event).encode()
    assert 5_900_000 < len(raw) < 6 * 1024 * 1024
    resp = lambda_client.invoke(FunctionName=python_fn, Payload=raw)
    body = resp["Payload"].read()
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body[:200]
    assert json.loads(body) == event


def test_response_over_6mb_is_a_function_error(lambda_client, python_fn):
    resp, payload = invoke_json(lambda_client, python_fn,
                                {"action": "big_response", "bytes": 7 * 1024 * 1024})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
                        "(6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }


def test_empty_payload_is_delivered_as_an_empty_object(lambda_client, python_fn):
    resp = lambda_client.invoke(FunctionName=python_fn)
    assert resp["StatusCode"] == 200
    assert json.loads(resp["Payload"].read()) == {}
