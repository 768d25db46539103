"""The CloudWatch Logs API on Flint's endpoint, read with boto3's logs client and the AWS CLI (v1)
as users point them at Flint (`endpoint_url`): DescribeLogGroups, DescribeLogStreams,
GetLogEvents and FilterLogEvents over the functions' log groups (`/aws/lambda/NAME` or
`LoggingConfig.LogGroup`), with CloudWatch's filter patterns (text and JSON), paging tokens and
error shapes. (AWS CLI v2's `aws logs tail` is not installed here and was not run.)"""

import json
import os
import re
import subprocess
import time
import uuid

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import urllib.request
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    aws_cli,
    client_error,
    create_function,
    invoke_json,
    make_zip,
    random_account,
    request_id,
    unique_name,
)

PROBE = '''
import json, logging, os

logger = logging.getLogger()


def handler(event, context):
    for line in event.get("print", []):
        print(line)
    for level, text in event.get("log", []):
        getattr(logger, level)(text)
    if event.get("fail"):
        raise ValueError(event["fail"])
    return {"stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
            "group": os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]}
'''

STREAM_NAME = re.compile(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$")


def logs_client(server, account=None):
    return boto3.session.Session().client(
        "logs", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=account or "AKIDFLINTTEST", aws_secret_access_key="flint-test-secret",
        config=Config(retries={"total_max_attempts": 1}))


def wait_for(fetch, ok, timeout=15.0):
    """Polls `fetch()` until `ok(result)`: the log writer persists lines in the background."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = fetch()
        except ClientError as e:  # the group appears with its first line on disk
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            result = e
        else:
            if ok(result):
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s; last: {result}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def logs(server):
    return logs_client(server)


@pytest.fixture(scope="module")
def text_fn(lambda_client):
    """A function that has run once, printing a few known lines."""
    name = unique_name("logsapi")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=make_zip({"index.py": PROBE}))
    return name


def messages(events):
    return [e["message"] for e in events]


def filter_all(logs, **kwargs):
    pages = logs.get_paginator("filter_log_events").paginate(**kwargs)
    return [e for p in pages for e in p["events"]]


def test_a_functions_group_and_stream_are_described_once_it_has_run(logs, lambda_client, text_fn):
    marker = f"hello-{uuid.uuid4().hex}"
    resp, out = invoke_json(lambda_client, text_fn, {"print": [marker]})
    group = f"/aws/lambda/{text_fn}"
    assert out["group"] == group
    groups = wait_for(lambda: logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"],
                      lambda g: len(g) == 1)
    assert groups[0]["logGroupName"] == group
    assert groups[0]["arn"] == f"arn:aws:logs:{REGION}:{DEFAULT_ACCOUNT}:log-group:{group}:*"
    assert groups[0]["logGroupArn"] == f"arn:aws:logs:{REGION}:{DEFAULT_ACCOUNT}:log-group:{group}"
    assert isinstance(groups[0]["creationTime"], int)

    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [out["stream"]], "one stream per environment"
    assert STREAM_NAME.match(out["stream"]), out["stream"]
    now_ms = time.time() * 1000
    assert abs(streams[0]["lastEventTimestamp"] - now_ms) < 120_000
    assert streams[0]["arn"].endswith(f":log-group:{group}:log-stream:{out['stream']}")

    # The ARN names the group as well as its name does.
    by_arn = logs.describe_log_streams(logGroupIdentifier=groups[0]["logGroupArn"])
    assert [s["logStreamName"] for s in by_arn["logStreams"]] == [out["stream"]]


def test_get_log_events_reads_an_invocation_in_order_and_pages(logs, lambda_client, text_fn):
    lines = [f"line-{i}-{uuid.uuid4().hex[:8]}" for i in range(5)]
    resp, out = invoke_json(lambda_client, text_fn, {"print": lines})
    rid = request_id(resp)
    group, stream = f"/aws/lambda/{text_fn}", out["stream"]

    def read():
        return logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)

    got = wait_for(read, lambda r: f"END RequestId: {rid}" in messages(r["events"]))
    msgs = messages(got["events"])
    start = msgs.index(f"START RequestId: {rid} Version: $LATEST")
    assert msgs[start + 1:start + 6] == lines
    assert msgs[start + 6] == f"END RequestId: {rid}"
    assert msgs[start + 7].startswith(f"REPORT RequestId: {rid}\t")
    for e in got["events"]:
        assert e["ingestionTime"] >= e["timestamp"] > 1_700_000_000_000
    assert re.match(r"^f/\d+", got["nextForwardToken"]), got["nextForwardToken"]
    assert re.match(r"^b/\d+", got["nextBackwardToken"]), got["nextBackwardToken"]

    # Forward paging, two at a time, ends when the token comes back unchanged (as the CLI stops).
    paged, token = [], None
    for _ in range(100):
        kw = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=2, **kw)
        assert len(page["events"]) <= 2
        paged += messages(page["events"])
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert paged == msgs[:len(paged)] and len(paged) >= len(msgs)

    # Without startFromHead: the newest events.
    newest = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)
    assert messages(newest["events"])[0].startswith("REPORT RequestId: ")


def test_filter_log_events_with_text_patterns(logs, lambda_client, text_fn):
    tag = uuid.uuid4().hex[:10]
    lines = [f"{tag} ERROR disk full", f"{tag} WARN slow", f"{tag} ERROR timeout retried",
             f"{tag} INFO fine"]
    invoke_json(lambda_client, text_fn, {"print": lines})
    group = f"/aws/lambda/{text_fn}"

    def f(pattern):
        return messages(filter_all(logs, logGroupName=group, filterPattern=pattern))

    wait_for(lambda: f(tag), lambda m: len(m) == 4)
    assert f(f"{tag} ERROR") == [lines[0], lines[2]]
    assert f(f'{tag} "disk full"') == [lines[0]]
    assert f(f"{tag} ERROR -retried") == [lines[0]]
    assert sorted(f(f"{tag} ?WARN ?INFO")) == sorted([lines[1], lines[3]])
    assert f(f"{tag} error") == [], "terms are case-sensitive"
    # Space-delimited: [tag, level, ...]
    assert f(f"[t = {tag}, level = ERROR, ...]") == [lines[0], lines[2]]


def test_filter_log_events_pages_with_next_token(logs, lambda_client, text_fn):
    tag = uuid.uuid4().hex[:10]
    lines = [f"{tag} n{i:02d}" for i in range(7)]
    invoke_json(lambda_client, text_fn, {"print": lines})
    group = f"/aws/lambda/{text_fn}"
    wait_for(lambda: filter_all(logs, logGroupName=group, filterPattern=tag), lambda e: len(e) == 7)
    first = logs.filter_log_events(logGroupName=group, filterPattern=tag, limit=3)
    assert messages(first["events"]) == lines[:3]
    assert "nextToken" in first
    second = logs.filter_log_events(logGroupName=group, filterPattern=tag, limit=3,
                                    nextToken=first["nextToken"])
    assert messages(second["events"]) == lines[3:6]
    third = logs.filter_log_events(logGroupName=group, filterPattern=tag, limit=3,
                                   nextToken=second["nextToken"])
    assert messages(third["events"]) == lines[6:]
    assert "nextToken" not in third
    for e in first["events"]:
        assert STREAM_NAME.match(e["logStreamName"]) and e["eventId"]
    # A time window: endTime excludes events at or after it.
    ts = first["events"][0]["timestamp"]
    none = logs.filter_log_events(logGroupName=group, filterPattern=tag, endTime=ts)
    assert none["events"] == []


def test_json_log_format_is_filtered_with_json_patterns(logs, lambda_client):
    name = unique_name("logsapi-json")
    create_function(lambda_client, name, runtime="python3.12",
                    zip_bytes=make_zip({"index.py": PROBE}), LoggingConfig={"LogFormat": "JSON"})
    tag = uuid.uuid4().hex[:10]
    invoke_json(lambda_client, name, {"log": [["warning", f"{tag}-w"], ["error", f"{tag}-e"],
                                              ["info", f"{tag}-i"]]})
    group = f"/aws/lambda/{name}"

    def f(pattern):
        return [json.loads(m) for m in
                messages(filter_all(logs, logGroupName=group, filterPattern=pattern))]

    records = wait_for(lambda: f(f'{{ $.message = "{tag}*" }}'), lambda r: len(r) == 3)
    assert {"ERROR", "INFO"} <= {r["level"] for r in records}
    errors = f(f'{{ $.message = "{tag}*" && $.level = "ERROR" }}')
    assert [r["message"] for r in errors] == [f"{tag}-e"]
    either = f(f'{{ ($.level = "ERROR" || $.level = "WARN*") && $.message = "{tag}*" }}')
    assert sorted(r["message"] for r in either) == [f"{tag}-e", f"{tag}-w"]
    # The platform's own JSON records are there too (platform.report) and filterable.
    reports = f('{ $.type = "platform.report" && $.record.metrics.durationMs >= 0 }')
    assert reports and all(r["record"]["requestId"] for r in reports)
    assert f(f'{{ $.message = "{tag}*" && $.nothere EXISTS }}') == []
    assert len(f(f'{{ $.message = "{tag}*" && $.nothere NOT EXISTS }}')) == 3


def test_a_custom_log_group_from_logging_config(logs, lambda_client):
    name = unique_name("logsapi-group")
    group = f"/flint/tests/{uuid.uuid4().hex[:12]}"
    create_function(lambda_client, name, runtime="python3.12",
                    zip_bytes=make_zip({"index.py": PROBE}), LoggingConfig={"LogGroup": group})
    marker = f"custom-{uuid.uuid4().hex}"
    _, out = invoke_json(lambda_client, name, {"print": [marker]})
    assert out["group"] == group
    events = wait_for(lambda: filter_all(logs, logGroupName=group, filterPattern=f'"{marker}"'),
                      lambda e: len(e) == 1)
    assert events[0]["logStreamName"] == out["stream"]
    names = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/flint/tests/")["logGroups"]]
    assert group in names
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")
    assert client_error(e)["code"] == "ResourceNotFoundException"


def test_an_unknown_group_or_stream_is_cloudwatchs_resource_not_found(logs, text_fn):
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=f"/aws/lambda/nope-{uuid.uuid4().hex}")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "ResourceNotFoundException", "The specified log group does not exist.")
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=f"/aws/lambda/{text_fn}", logStreamName="2020/01/01/[$LATEST]00")
    err = client_error(e)
    assert (err["code"], err["message"]) == (
        "ResourceNotFoundException", "The specified log stream does not exist.")
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=f"/aws/lambda/{text_fn}", filterPattern="{ $.a = ")
    assert client_error(e)["code"] == "InvalidParameterException"


def test_other_accounts_see_none_of_these_groups(server, text_fn):
    other = logs_client(server, random_account())
    assert other.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{text_fn}")["logGroups"] == []
    with pytest.raises(ClientError) as e:
        other.describe_log_streams(logGroupName=f"/aws/lambda/{text_fn}")
    assert client_error(e)["code"] == "ResourceNotFoundException"


def test_describe_log_groups_pages(logs, lambda_client):
    prefix = f"/flint/paging/{uuid.uuid4().hex[:8]}"
    groups = [f"{prefix}/{i}" for i in range(3)]
    for g in groups:
        name = unique_name("logsapi-page")
        create_function(lambda_client, name, runtime="python3.12",
                        zip_bytes=make_zip({"index.py": PROBE}), LoggingConfig={"LogGroup": g})
        invoke_json(lambda_client, name, {})
    wait_for(lambda: logs.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"],
             lambda g: len(g) == 3)
    first = logs.describe_log_groups(logGroupNamePrefix=prefix, limit=2)
    assert [g["logGroupName"] for g in first["logGroups"]] == groups[:2]
    rest = logs.describe_log_groups(logGroupNamePrefix=prefix, limit=2, nextToken=first["nextToken"])
    assert [g["logGroupName"] for g in rest["logGroups"]] == groups[2:]
    assert "nextToken" not in rest


def signed_logs_request(server, target, body=b"{}"):
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=server.endpoint + "/", data=body,
        headers={"X-Amz-Target": f"Logs_20140328.{target}",
                 "Content-Type": "application/x-amz-json-1.1"})
    creds = botocore.credentials.Credentials("AKIDFLINTTEST", "flint-test-secret")
    botocore.auth.SigV4Auth(creds, "logs", REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_other_operations_get_cloudwatchs_error_shape(server, logs):
    status, body = signed_logs_request(server, "NoSuchOperation")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName="/aws/lambda/x", logStreamName="s",
                            logEvents=[{"timestamp": 1, "message": "m"}])
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidOperationException")
    assert "PutLogEvents" in err["message"]


def test_a_retention_policy_is_refused_naming_the_servers_retention(logs):
    """Retention is the server's for every function (`flint serve --log-retention-days`): a
    per-group policy would not be kept, so PutRetentionPolicy says so rather than pretend."""
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName="/aws/lambda/x", retentionInDays=1)
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidOperationException")
    assert "--log-retention-days" in err["message"]


def test_a_signature_for_another_service_is_refused_in_cloudwatchs_shape(server):
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=server.endpoint + "/", data=b"{}",
        headers={"X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                 "Content-Type": "application/x-amz-json-1.1"})
    creds = botocore.credentials.Credentials("AKIDFLINTTEST", "flint-test-secret")
    botocore.auth.SigV4Auth(creds, "lambda", REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=b"{}", headers=dict(prepared.headers), method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r, timeout=10)
    body = json.loads(e.value.read())
    assert body["__type"] == "InvalidSignatureException"
    assert "'logs'" in body["message"]


@pytest.fixture(scope="module")
def cli(server):
    path = aws_cli()
    if path is None:
        pytest.skip("the AWS CLI is not installed (tests/requirements.txt: awscli)")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDFLINTTEST",
               AWS_SECRET_ACCESS_KEY="flint-test-secret", AWS_DEFAULT_REGION=REGION)
    env.pop("AWS_PROFILE", None)

    def run(*args):
        p = subprocess.run([path, "logs", *args, "--endpoint-url", server.endpoint,
                            "--output", "json"], env=env, capture_output=True, text=True,
                           timeout=60)
        return p
    return run


def test_aws_cli_filter_and_get_log_events(cli, logs, lambda_client, text_fn):
    tag = uuid.uuid4().hex[:10]
    lines = [f"{tag} ERROR one", f"{tag} ok two", f"{tag} ERROR three"]
    _, out = invoke_json(lambda_client, text_fn, {"print": lines})
    group = f"/aws/lambda/{text_fn}"
    wait_for(lambda: filter_all(logs, logGroupName=group, filterPattern=tag), lambda e: len(e) == 3)

    # The CLI pages through nextToken on its own (page size 1 forces it).
    p = cli("filter-log-events", "--log-group-name", group, "--filter-pattern", f"{tag} ERROR",
            "--page-size", "1")
    assert p.returncode == 0, p.stderr
    got = [e["message"] for e in json.loads(p.stdout)["events"]]
    assert got == [lines[0], lines[2]]

    p = cli("get-log-events", "--log-group-name", group, "--log-stream-name", out["stream"],
            "--start-from-head")
    assert p.returncode == 0, p.stderr
    assert set(lines) <= {e["message"] for e in json.loads(p.stdout)["events"]}

    p = cli("describe-log-streams", "--log-group-name", group)
    assert p.returncode == 0, p.stderr
    assert out["stream"] in [s["logStreamName"] for s in json.loads(p.stdout)["logStreams"]]

    p = cli("filter-log-events", "--log-group-name", "/aws/lambda/does-not-exist")
    assert p.returncode != 0
    assert "ResourceNotFoundException" in p.stderr
