"""Function logs as AWS Lambda writes them: START / the function's output / END / REPORT for every
invocation (Init Duration on a cold start only), `LogType: Tail` (the last 4 KB, base64), the
runtimes' own line formats (Python's logging module, Node's console), `LoggingConfig.LogFormat:
JSON` (platform records and application records as JSON), and `flint logs` printing a function's
log from the data dir, per account and region."""

import base64
import json
import math
import re
import subprocess
import time
import uuid

import pytest

from conftest import (
    create_function,
    invoke_json,
    make_zip,
    random_account,
    request_id,
    unique_name,
)

PROBE = '''
import logging, os

logger = logging.getLogger()


def handler(event, context):
    action = event.get("action")
    if action == "print":
        print(event["text"])
    elif action == "print_lines":
        for i in range(event["count"]):
            print("line-%05d %s" % (i, "p" * 60))
    elif action == "log":
        getattr(logger, event["level"])(event["text"])
    elif action == "log_all":
        print("print:" + event["text"])
        logger.debug("debug:" + event["text"])
        logger.info("info:" + event["text"])
        logger.warning("warning:" + event["text"])
    elif action == "error":
        raise ValueError(event["text"])
    elif action == "env":
        return dict(os.environ)
    return {"ok": True}
'''

NODE_PROBE = '''
exports.handler = async (event) => {
  console.log(event.text);
  console.error("err:" + event.text);
  return { ok: true };
};
'''

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
REPORT = re.compile(
    r"REPORT RequestId: (?P<rid>[0-9a-f-]{36})\tDuration: (?P<duration>\d+\.\d{2}) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<size>\d+) MB\t"
    r"Max Memory Used: (?P<used>\d+) MB\t(?:Init Duration: (?P<init>\d+\.\d{2}) ms\t)?")


def probe_zip():
    return make_zip({"index.py": PROBE})


def tail(resp) -> str:
    assert "LogResult" in resp, "LogType=Tail must return LogResult"
    return base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")


def report_of(log: str, rid: str) -> re.Match:
    for match in REPORT.finditer(log):
        if match.group("rid") == rid:
            return match
    raise AssertionError(f"no REPORT line for {rid} in:\n{log}")


@pytest.fixture(scope="module")
def text_fn(lambda_client):
    name = unique_name("logs")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip())
    return name


@pytest.fixture(scope="module")
def json_fn(lambda_client):
    name = unique_name("logs-json")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip(),
                    LoggingConfig={"LogFormat": "JSON"})
    return name


@pytest.fixture(scope="module")
def json_warn_fn(lambda_client):
    name = unique_name("logs-json-warn")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip(),
                    LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    return name


# ---------------------------------------------------------------------------------------------
# Text format and LogType=Tail
# ---------------------------------------------------------------------------------------------

def test_cold_then_warm_invocation_log_lines(lambda_client):
    name = unique_name("logs-cold")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip())
    marker = f"cold-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, name, {"action": "print", "text": marker},
                          LogType="Tail")
    rid = request_id(resp)
    log = tail(resp)
    lines = log.splitlines()
    start = lines.index(f"START RequestId: {rid} Version: $LATEST")
    assert lines[start + 1] == marker
    assert lines[start + 2] == f"END RequestId: {rid}"
    assert lines[start + 3].startswith(f"REPORT RequestId: {rid}\t")
    assert log.endswith("\n")
    cold = report_of(log, rid)
    # As recorded: REPORT ends with a tab, has Memory Size as configured and, on a cold start,
    # Init Duration.
    assert cold.group("size") == "128"
    assert cold.group("init") is not None, lines[start + 3]
    assert lines[start + 3].endswith("ms\t")
    assert 0 < int(cold.group("used")) <= 128

    warm_marker = f"warm-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, name, {"action": "print", "text": warm_marker},
                          LogType="Tail")
    rid = request_id(resp)
    log = tail(resp)
    warm = report_of(log, rid)
    assert warm.group("init") is None, "Init Duration only on a cold start"
    assert f"START RequestId: {rid} Version: $LATEST\n{warm_marker}\nEND RequestId: {rid}\n" in log
    # The tail is this invocation's log: not the previous one's.
    assert marker not in log
    # Billed duration: the duration rounded up to the next millisecond.
    assert int(warm.group("billed")) == max(1, math.ceil(float(warm.group("duration")))), \
        warm.group(0)


def test_cold_start_billed_duration_includes_init(lambda_client):
    # Since 2025-08-01 Lambda bills the INIT phase of on-demand ZIP functions on managed runtimes:
    # REPORT's Billed Duration = Duration + Init Duration, rounded up.
    name = unique_name("logs-billing")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip())
    resp, _ = invoke_json(lambda_client, name, {"action": "print", "text": "x"}, LogType="Tail")
    report = report_of(tail(resp), request_id(resp))
    assert report.group("init") is not None
    expected = math.ceil(float(report.group("duration")) + float(report.group("init")))
    assert abs(int(report.group("billed")) - expected) <= 1, report.group(0)


def test_multi_line_output_keeps_its_lines(lambda_client, text_fn):
    # Recorded (test_multi_line_prints): each line is its own log line, '\r' stays inside a line.
    resp, _ = invoke_json(lambda_client, text_fn,
                          {"action": "print", "text": "multi\nline\nstring"}, LogType="Tail")
    log = tail(resp)
    assert "\nmulti\nline\nstring\nEND RequestId" in log, log


def test_tail_is_the_last_4kb_of_the_invocation(lambda_client, text_fn):
    resp, _ = invoke_json(lambda_client, text_fn, {"action": "print_lines", "count": 200},
                          LogType="Tail")
    raw = base64.b64decode(resp["LogResult"])
    assert 3500 < len(raw) <= 4096
    log = raw.decode("utf-8", "replace")
    assert "line-00199" in log, "the end of the output is kept"
    assert "line-00000" not in log, "the beginning is cut"
    assert log.rstrip("\n").splitlines()[-1].startswith(f"REPORT RequestId: {request_id(resp)}")


def test_python_logging_text_format(lambda_client, text_fn):
    marker = f"warn-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, text_fn,
                          {"action": "log", "level": "warning", "text": marker}, LogType="Tail")
    rid = request_id(resp)
    assert re.search(rf"^\[WARNING\]\t{TIMESTAMP}\t{rid}\t{marker}$", tail(resp), re.M), tail(resp)


def test_unhandled_error_is_logged(lambda_client, text_fn):
    marker = f"boom-{uuid.uuid4().hex}"
    resp, payload = invoke_json(lambda_client, text_fn, {"action": "error", "text": marker},
                                LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "ValueError"
    log = tail(resp)
    assert re.search(rf"\[ERROR\]\s+ValueError: {marker}", log), log
    rid = request_id(resp)
    assert f"END RequestId: {rid}" in log
    report_of(log, rid)


def test_node_console_log_format(lambda_client):
    # Recorded (test_invocation_with_logs[nodejs]): "<timestamp>\t<request id>\tINFO\t<message>".
    name = unique_name("logs-node")
    create_function(lambda_client, name, runtime="nodejs20.x",
                    zip_bytes=make_zip({"index.js": NODE_PROBE}))
    marker = f"node-{uuid.uuid4().hex}"
    resp, payload = invoke_json(lambda_client, name, {"text": marker}, LogType="Tail")
    assert payload == {"ok": True}
    rid = request_id(resp)
    log = tail(resp)
    assert re.search(rf"^{TIMESTAMP}\t{rid}\tINFO\t{marker}$", log, re.M), log
    assert re.search(rf"^{TIMESTAMP}\t{rid}\tERROR\terr:{marker}$", log, re.M), log
    report_of(log, rid)


def test_no_log_result_without_tail_nor_for_event_invokes(lambda_client, text_fn):
    resp, _ = invoke_json(lambda_client, text_fn, {"action": "print", "text": "x"},
                          LogType="None")
    assert "LogResult" not in resp
    resp = lambda_client.invoke(FunctionName=text_fn, InvocationType="Event", LogType="Tail",
                                Payload=json.dumps({"action": "print", "text": "x"}))
    assert resp["StatusCode"] == 202
    assert "LogResult" not in resp


# ---------------------------------------------------------------------------------------------
# LoggingConfig.LogFormat = JSON
# ---------------------------------------------------------------------------------------------

def json_records(log: str):
    """(records, plain lines) of a JSON-format log."""
    records, plain = [], []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            plain.append(line)
            continue
        if isinstance(value, dict):
            records.append(value)
        else:
            plain.append(line)
    return records, plain


def test_json_format_platform_records(lambda_client, json_fn):
    marker = f"json-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, json_fn, {"action": "log_all", "text": marker},
                          LogType="Tail")
    rid = request_id(resp)
    records, plain = json_records(tail(resp))
    start = [r for r in records if r.get("type") == "platform.start"]
    assert start and start[-1]["record"] == {"requestId": rid, "version": "$LATEST"}
    assert re.match(TIMESTAMP, start[-1]["time"])
    report = [r for r in records if r.get("type") == "platform.report"]
    assert report, records
    record = report[-1]["record"]
    assert record["requestId"] == rid
    assert record["status"] == "success"
    metrics = record["metrics"]
    assert metrics["memorySizeMB"] == 128
    assert 0 < metrics["maxMemoryUsedMB"] <= 128
    assert metrics["durationMs"] >= 0 and metrics["billedDurationMs"] >= 1
    # No text START/END/REPORT lines in JSON format; print() output stays plain text.
    assert not any(line.startswith(("START RequestId", "END RequestId", "REPORT RequestId"))
                   for line in plain), plain
    assert f"print:{marker}" in plain


def test_json_format_application_records_at_default_level_info(lambda_client, json_fn):
    marker = f"json-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, json_fn, {"action": "log_all", "text": marker},
                          LogType="Tail")
    rid = request_id(resp)
    records, _ = json_records(tail(resp))
    app = {r["message"]: r for r in records if "message" in r and marker in str(r["message"])}
    warning = app.get(f"warning:{marker}")
    assert warning is not None, records
    assert warning["level"] == "WARNING"
    assert warning["requestId"] == rid
    assert warning["logger"] == "root"
    assert re.match(TIMESTAMP, warning["timestamp"])
    # ApplicationLogLevel defaults to INFO with the JSON format: INFO is kept, DEBUG dropped.
    assert f"info:{marker}" in app, records
    assert app[f"info:{marker}"]["level"] == "INFO"
    assert f"debug:{marker}" not in app


def test_json_format_environment_and_configuration(lambda_client, json_fn):
    conf = lambda_client.get_function_configuration(FunctionName=json_fn)
    assert conf["LoggingConfig"] == {
        "LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "INFO",
        "LogGroup": f"/aws/lambda/{json_fn}"}
    _, env = invoke_json(lambda_client, json_fn, {"action": "env"})
    assert env["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    assert env["AWS_LAMBDA_LOG_LEVEL"] == "INFO"


def test_json_format_application_log_level_filters(lambda_client, json_warn_fn):
    marker = f"warn-level-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, json_warn_fn, {"action": "log_all", "text": marker},
                          LogType="Tail")
    records, _ = json_records(tail(resp))
    messages = [r.get("message") for r in records]
    assert f"warning:{marker}" in messages, records
    assert f"info:{marker}" not in messages
    assert f"debug:{marker}" not in messages
    _, env = invoke_json(lambda_client, json_warn_fn, {"action": "env"})
    assert env["AWS_LAMBDA_LOG_LEVEL"] == "WARN"


def test_text_format_sets_no_log_level(lambda_client, text_fn):
    _, env = invoke_json(lambda_client, text_fn, {"action": "env"})
    assert "AWS_LAMBDA_LOG_LEVEL" not in env


# ---------------------------------------------------------------------------------------------
# flint logs
# ---------------------------------------------------------------------------------------------

def flint_logs(flint_bin, server, name, *extra):
    return subprocess.run(
        [str(flint_bin), "logs", name, "--data-dir", str(server.data_dir), *extra],
        capture_output=True, text=True, timeout=30)


def wait_for_logs(flint_bin, server, name, extra, wanted, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = flint_logs(flint_bin, server, name, *extra)
        if result.returncode == 0 and all(w in result.stdout for w in wanted):
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"flint logs never showed {wanted}: rc={result.returncode}\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        time.sleep(0.2)


def test_flint_logs_prints_the_function_log_of_an_account_and_region(
        flint_bin, server, make_client):
    account, region = random_account(), "eu-west-1"
    client = make_client(account=account, region=region)
    name = unique_name("logs-cli")
    create_function(client, name, runtime="python3.12", zip_bytes=probe_zip())
    markers = [f"cli-{i}-{uuid.uuid4().hex}" for i in range(2)]
    rids = []
    for marker in markers:
        resp, _ = invoke_json(client, name, {"action": "print", "text": marker})
        rids.append(request_id(resp))
    out = wait_for_logs(flint_bin, server, name, ["--account", account, "--region", region],
                        markers + [f"REPORT RequestId: {rid}" for rid in rids])
    for rid, marker in zip(rids, markers):
        start = out.index(f"START RequestId: {rid} Version: $LATEST")
        assert start < out.index(marker) < out.index(f"END RequestId: {rid}") \
            < out.index(f"REPORT RequestId: {rid}")
    # Invocations in order.
    assert out.index(markers[0]) < out.index(markers[1])
    # The cold start's REPORT carries Init Duration.
    assert "Init Duration" in out[out.index(f"REPORT RequestId: {rids[0]}"):].splitlines()[0]

    # Another account or region has no such function's logs.
    other_account = flint_logs(flint_bin, server, name, "--account", random_account(),
                               "--region", region)
    assert other_account.returncode != 0 or markers[0] not in other_account.stdout
    other_region = flint_logs(flint_bin, server, name, "--account", account,
                              "--region", "us-west-2")
    assert other_region.returncode != 0 or markers[0] not in other_region.stdout


def test_flint_logs_shows_event_invocations(flint_bin, server, lambda_client, text_fn):
    marker = f"cli-event-{uuid.uuid4().hex}"
    resp = lambda_client.invoke(FunctionName=text_fn, InvocationType="Event",
                                Payload=json.dumps({"action": "print", "text": marker}))
    assert resp["StatusCode"] == 202
    rid = resp["ResponseMetadata"]["RequestId"]
    out = wait_for_logs(flint_bin, server, text_fn, [], [marker, f"REPORT RequestId: {rid}"],
                        timeout=20)
    assert out.index(f"START RequestId: {rid} Version: $LATEST") < out.index(marker) \
        < out.index(f"END RequestId: {rid}")


def test_flint_logs_json_format_lines(flint_bin, server, lambda_client, json_fn):
    marker = f"cli-json-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, json_fn, {"action": "log_all", "text": marker})
    rid = request_id(resp)
    out = wait_for_logs(flint_bin, server, json_fn, [], [f"warning:{marker}", rid])
    records, _ = json_records(out)
    assert any(r.get("type") == "platform.start" and r["record"].get("requestId") == rid
               for r in records)
    assert any(r.get("message") == f"warning:{marker}" and r.get("requestId") == rid
               for r in records)


def test_log_stream_name_matches_the_context(lambda_client, text_fn):
    _, env = invoke_json(lambda_client, text_fn, {"action": "env"})
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{text_fn}"
    assert re.match(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$",
                    env["AWS_LAMBDA_LOG_STREAM_NAME"])
