"""Asynchronous invocation as AWS Lambda runs it, end to end against real services: the event
invoke config of the qualifier invoked decides the retries (MaximumRetryAttempts 0–2, about 1 then
2 minutes apart on AWS, 1 and 2 s in this suite), MaximumEventAgeInSeconds and the destinations;
the invocation record (as recorded in test_lambda_destinations.snapshot.json) reaches SQS, SNS,
EventBridge and S3 on moto's server; DeadLetterConfig gets the event with RequestID / ErrorCode /
ErrorMessage; a retry's due time survives a crash; functions get AWS_ENDPOINT_URL_LAMBDA (Flint)
and the endpoints Flint was given."""

import json
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import (
    ASYNC_RETRY_DELAY_SECS,
    DEFAULT_ACCOUNT,
    REGION,
    FlintServer,
    create_function,
    invoke_json,
    make_zip,
    unique_name,
)

PROBE = '''
import json, os, urllib.request


def handler(event, context):
    if "url" in event:
        body = {"token": event["token"], "request_id": context.aws_request_id}
        req = urllib.request.Request(event["url"], data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()
    if event.get("env"):
        return {k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")}
    if event.get("fail"):
        raise Exception("intentional failure " + event.get("token", ""))
    return {"ok": event.get("token")}
'''


def probe_zip():
    return make_zip({"index.py": PROBE})


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def attempts_of(callback_server, token):
    return [json.loads(b) for b in list(callback_server.received) if token in b]


def wait_attempts(callback_server, token, n, timeout):
    """Waits until `n` attempts of `token` reported (returns them), or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = attempts_of(callback_server, token)
        if len(got) >= n:
            return got
        callback_server.wait_for(lambda b: False, timeout=0.2)
    return attempts_of(callback_server, token)


def send_event(client, name, event, **kwargs):
    resp = client.invoke(FunctionName=name, InvocationType="Event",
                         Payload=json.dumps(event).encode(), **kwargs)
    assert resp["StatusCode"] == 202
    return resp["ResponseMetadata"]["RequestId"]


@pytest.fixture
def queue(aws_services):
    sqs = aws_services.client("sqs")
    name = unique_name("q")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return sqs, url, queue_arn


def receive(sqs, url, timeout=20, attributes=False):
    """The next message of a queue (waiting on SQS's long poll), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2, MaxNumberOfMessages=1,
                                  MessageAttributeNames=["All"] if attributes else [])
        for m in got.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return m
    return None


# ---------------------------------------------------------------------------------------------
# Retries and qualifier resolution
# ---------------------------------------------------------------------------------------------

def test_maximum_retry_attempts_zero_runs_once(lambda_client, callback_server):
    name = unique_name("retry0")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    token = uuid.uuid4().hex
    send_event(lambda_client, name, {"url": callback_server.url, "token": token, "fail": True})
    assert len(wait_attempts(callback_server, token, 1, 15)) == 1
    # A retry would come after the base delay; give it three times that.
    assert len(wait_attempts(callback_server, token, 2, 3 * ASYNC_RETRY_DELAY_SECS + 1)) == 1


def test_function_errors_are_retried_twice_after_one_then_two_delays(lambda_client,
                                                                     callback_server):
    name = unique_name("retry2")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    token = uuid.uuid4().hex
    rid = send_event(lambda_client, name, {"url": callback_server.url, "token": token,
                                           "fail": True})
    started = time.monotonic()
    got = wait_attempts(callback_server, token, 3, 30)
    assert len(got) == 3
    # Every attempt is the same invocation (its request id).
    assert {a["request_id"] for a in got} == {rid}
    # The first retry after ~1 delay, the second ~2 delays later: ≥ 3 delays in all.
    assert time.monotonic() - started >= 3 * ASYNC_RETRY_DELAY_SECS - 0.5
    assert len(wait_attempts(callback_server, token, 4, 4 * ASYNC_RETRY_DELAY_SECS)) == 3


def test_the_config_of_the_qualifier_invoked_applies(lambda_client, callback_server):
    name = unique_name("retryq")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.put_function_event_invoke_config(FunctionName=name, Qualifier="live",
                                                   MaximumRetryAttempts=0)
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    live, latest, version = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    send_event(lambda_client, name, {"url": callback_server.url, "token": live, "fail": True},
               Qualifier="live")
    send_event(lambda_client, name, {"url": callback_server.url, "token": latest, "fail": True})
    # Version 1 has no config of its own: AWS's defaults (2 retries), not the alias's.
    send_event(lambda_client, name, {"url": callback_server.url, "token": version, "fail": True},
               Qualifier="1")
    assert len(wait_attempts(callback_server, version, 3, 30)) == 3
    assert len(attempts_of(callback_server, live)) == 1
    assert len(attempts_of(callback_server, latest)) == 2


# ---------------------------------------------------------------------------------------------
# Destinations: the invocation record on SQS, SNS, EventBridge, S3
# ---------------------------------------------------------------------------------------------

def check_record(record, *, name, token, condition, count, qualifier="$LATEST"):
    assert list(record) == ["version", "timestamp", "requestContext", "requestPayload",
                            "responseContext", "responsePayload"]
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z")
    ctx = record["requestContext"]
    assert list(ctx) == ["requestId", "functionArn", "condition", "approximateInvokeCount"]
    assert ctx["functionArn"] == arn(name, qualifier)
    assert ctx["condition"] == condition
    assert ctx["approximateInvokeCount"] == count
    assert record["requestPayload"]["token"] == token
    assert record["responseContext"]["statusCode"] == 200
    assert record["responseContext"]["executedVersion"] == "$LATEST"


def test_sqs_destinations_get_the_invocation_record(lambda_client, queue):
    sqs, url, queue_arn = queue
    name = unique_name("dest-sqs")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": queue_arn},
                           "OnFailure": {"Destination": queue_arn}})
    ok = uuid.uuid4().hex
    rid = send_event(lambda_client, name, {"token": ok})
    message = receive(sqs, url)
    assert message is not None, "no record on the OnSuccess queue"
    record = json.loads(message["Body"])
    check_record(record, name=name, token=ok, condition="Success", count=1)
    assert record["requestContext"]["requestId"] == rid
    assert "functionError" not in record["responseContext"]
    assert record["responsePayload"] == {"ok": ok}

    bad = uuid.uuid4().hex
    send_event(lambda_client, name, {"token": bad, "fail": True})
    message = receive(sqs, url)
    assert message is not None, "no record on the OnFailure queue"
    record = json.loads(message["Body"])
    check_record(record, name=name, token=bad, condition="RetriesExhausted", count=1)
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "Exception"
    assert record["responsePayload"]["errorMessage"] == f"intentional failure {bad}"


def test_retries_exhausted_counts_every_attempt(lambda_client, queue):
    sqs, url, queue_arn = queue
    name = unique_name("dest-retries")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    token = uuid.uuid4().hex
    send_event(lambda_client, name, {"token": token, "fail": True})
    message = receive(sqs, url, timeout=30)
    assert message is not None
    check_record(json.loads(message["Body"]), name=name, token=token,
                 condition="RetriesExhausted", count=3)


def test_an_alias_destination_record_names_the_alias(lambda_client, queue):
    sqs, url, queue_arn = queue
    name = unique_name("dest-alias")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, Qualifier="live",
        DestinationConfig={"OnSuccess": {"Destination": queue_arn}})
    token = uuid.uuid4().hex
    send_event(lambda_client, name, {"token": token}, Qualifier="live")
    message = receive(sqs, url)
    assert message is not None
    record = json.loads(message["Body"])
    assert record["requestContext"]["functionArn"] == arn(name, "live")
    assert record["responseContext"]["executedVersion"] == "1"


def test_sns_destination_publishes_the_record(lambda_client, aws_services, queue):
    sqs, url, queue_arn = queue
    sns = aws_services.client("sns")
    topic = sns.create_topic(Name=unique_name("t"))["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "true"})
    name = unique_name("dest-sns")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": topic}})
    token = uuid.uuid4().hex
    send_event(lambda_client, name, {"token": token})
    message = receive(sqs, url)
    assert message is not None, "nothing published on the topic"
    record = json.loads(message["Body"])
    check_record(record, name=name, token=token, condition="Success", count=1)


def test_eventbridge_destination_puts_a_lambda_event(lambda_client, aws_services, queue):
    sqs, url, queue_arn = queue
    events = aws_services.client("events")
    bus = unique_name("bus")
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    rule = unique_name("rule")
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": ["lambda"]}))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    name = unique_name("dest-events")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": bus_arn},
                           "OnFailure": {"Destination": bus_arn}})
    for fail, detail_type, condition in (
            (False, "Lambda Function Invocation Result - Success", "Success"),
            (True, "Lambda Function Invocation Result - Failure", "RetriesExhausted")):
        token = uuid.uuid4().hex
        send_event(lambda_client, name, {"token": token, "fail": fail})
        message = receive(sqs, url)
        assert message is not None, f"no {condition} event on the bus"
        event = json.loads(message["Body"])
        assert event["source"] == "lambda"
        assert event["detail-type"] == detail_type
        # (`account`, `region`, `time` and `id` are the bus's own: moto's envelope lacks some.)
        assert event["resources"] == [bus_arn, arn(name, "$LATEST")]
        check_record(event["detail"], name=name, token=token, condition=condition, count=1)


def test_s3_failure_destination_stores_the_record(lambda_client, aws_services):
    s3 = aws_services.client("s3")
    bucket = unique_name("bucket")
    s3.create_bucket(Bucket=bucket)
    name = unique_name("dest-s3")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}})
    token = uuid.uuid4().hex
    send_event(lambda_client, name, {"token": token, "fail": True})
    prefix = f"aws/lambda/async/{name}/"
    deadline = time.monotonic() + 20
    keys = []
    while time.monotonic() < deadline and not keys:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
                .get("Contents", [])]
        if not keys:
            time.sleep(0.2)
    assert len(keys) == 1, "no record in the bucket"
    record = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    check_record(record, name=name, token=token, condition="RetriesExhausted", count=1)


# ---------------------------------------------------------------------------------------------
# Dead-letter queues
# ---------------------------------------------------------------------------------------------

def test_dead_letter_queue_gets_the_event_with_its_error(lambda_client, queue):
    sqs, url, queue_arn = queue
    name = unique_name("dlq")
    create_function(lambda_client, name, zip_bytes=probe_zip(),
                    DeadLetterConfig={"TargetArn": queue_arn})
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    token = uuid.uuid4().hex
    event = {"token": token, "fail": True}
    rid = send_event(lambda_client, name, event)
    message = receive(sqs, url, attributes=True)
    assert message is not None, "nothing on the dead-letter queue"
    # Recorded (TestLambdaDLQ): the event itself, with RequestID, ErrorCode and ErrorMessage.
    assert json.loads(message["Body"]) == event
    attributes = {k: (v["DataType"], v["StringValue"])
                  for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "RequestID": ("String", rid),
        "ErrorCode": ("Number", "200"),
        "ErrorMessage": ("String", f"intentional failure {token}"),
    }


def test_an_on_failure_destination_takes_precedence_over_the_dlq(lambda_client, aws_services):
    sqs = aws_services.client("sqs")
    dlq_url = sqs.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    dest_url = sqs.create_queue(QueueName=unique_name("dest"))["QueueUrl"]
    dest_arn = sqs.get_queue_attributes(QueueUrl=dest_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    name = unique_name("dlq-dest")
    create_function(lambda_client, name, zip_bytes=probe_zip(),
                    DeadLetterConfig={"TargetArn": dlq_arn})
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    send_event(lambda_client, name, {"token": "x", "fail": True})
    assert receive(sqs, dest_url) is not None
    assert receive(sqs, dlq_url, timeout=3) is None


def test_an_unreachable_destination_is_logged_not_fatal(lambda_client, server):
    name = unique_name("dest-missing")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    missing = f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT}:{unique_name('nosuchqueue')}"
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": missing}})
    start = server.log_size()
    send_event(lambda_client, name, {"token": "y"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(server.log_path, "rb") as f:
            f.seek(start)
            if f"cannot send the async outcome to {missing}".encode() in f.read():
                break
        time.sleep(0.2)
    else:
        pytest.fail("no log line about the unreachable destination")
    # Flint still serves.
    resp, payload = invoke_json(lambda_client, name, {"token": "z"})
    assert payload == {"ok": "z"}
    # Once AWS's retries (1 + 2 + 4 + 8 s) are spent, Lambda's DestinationDeliveryFailures.
    line = f'lambda_destination_delivery_failures_total{{account="{DEFAULT_ACCOUNT}",region="{REGION}",function_name="{name}"}} 1'
    deadline = time.monotonic() + 30
    while line not in urllib.request.urlopen(server.endpoint + "/metrics").read().decode():
        assert time.monotonic() < deadline, "DestinationDeliveryFailures never counted"
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# Functions reach Flint and the other services
# ---------------------------------------------------------------------------------------------

def test_functions_get_flints_lambda_endpoint_and_the_given_ones(lambda_client, server,
                                                                 aws_services):
    name = unique_name("endpoints")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    _, env = invoke_json(lambda_client, name, {"env": True})
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == server.endpoint
    assert env["AWS_ENDPOINT_URL"] == aws_services.endpoint


# ---------------------------------------------------------------------------------------------
# Due times survive a crash
# ---------------------------------------------------------------------------------------------

def test_a_retry_keeps_its_due_time_across_a_crash(flint_bin, tmp_path, callback_server,
                                                   request):
    delay = 6
    servers = []

    def start():
        srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                          extra_args=["--async-retry-delay-secs", str(delay)])
        servers.append(srv)
        srv.start()
        request.node._flint_server = srv
        request.node._flint_log_start = 0
        return srv

    try:
        first = start()
        client = first.client()
        name = unique_name("due")
        create_function(client, name, zip_bytes=probe_zip())
        client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
        token = uuid.uuid4().hex
        send_event(client, name, {"url": callback_server.url, "token": token, "fail": True})
        assert len(wait_attempts(callback_server, token, 1, 15)) == 1
        failed_at = time.monotonic()

        def queue_rows():
            # `flint async-queue` reads the store: what it shows is durable.
            out = subprocess.run([str(flint_bin), "async-queue", "--data-dir",
                                  str(tmp_path / "data"), name],
                                 capture_output=True, text=True, check=True).stdout
            return out, [line.split() for line in out.splitlines() if name in line]

        # The function called back before it failed: the kill must come after Flint has stored
        # the failed attempt and the retry's due time (the attempt is done only then).
        deadline = time.monotonic() + 15
        while True:
            out, rows = queue_rows()
            if (len(rows) == 1 and rows[0][3:5] == ["1", "1"]) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        first.kill()
        # The killed server's data dir holds the retry with its due time (`flint async-queue`
        # reads the store, the server being dead).
        out, rows = queue_rows()
        assert len(rows) == 1 and rows[0][3:6] == ["1", "1", "in"], out
        start()
        # Before, a restart ran every pending event at once; now the retry waits for its time
        # (if the restart took longer than that, it runs at once: still not early).
        assert len(wait_attempts(callback_server, token, 2, 60)) == 2
        assert time.monotonic() - failed_at >= delay - 1
    finally:
        for srv in servers:
            srv.stop()


# ---------------------------------------------------------------------------------------------
# MaximumEventAgeInSeconds (its minimum is 60 s: this test takes a minute)
# ---------------------------------------------------------------------------------------------

def test_an_event_older_than_its_maximum_age_goes_to_on_failure(flint_bin, tmp_path,
                                                                aws_services, request):
    # A retry due after the event's maximum age: the event expires first (EventAgeExceeded,
    # one attempt made), as recorded in test_maxeventage.
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_args=["--async-retry-delay-secs", "120",
                                  "--aws-endpoint-url", aws_services.endpoint],
                      extra_env=aws_services.flint_env())
    request.node._flint_server = srv
    request.node._flint_log_start = 0
    try:
        srv.start()
        client = srv.client()
        sqs = aws_services.client("sqs")
        url = sqs.create_queue(QueueName=unique_name("age"))["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        name = unique_name("age")
        create_function(client, name, zip_bytes=probe_zip())
        client.put_function_event_invoke_config(
            FunctionName=name, MaximumEventAgeInSeconds=60,
            DestinationConfig={"OnFailure": {"Destination": queue_arn}})
        token = uuid.uuid4().hex
        sent = time.monotonic()
        send_event(client, name, {"token": token, "fail": True})
        message = receive(sqs, url, timeout=90)
        assert message is not None, "no EventAgeExceeded record"
        assert time.monotonic() - sent >= 59
        check_record(json.loads(message["Body"]), name=name, token=token,
                     condition="EventAgeExceeded", count=1)
    finally:
        srv.stop()


def test_zero_reserved_concurrency_sends_the_event_to_on_failure_unattempted(
        lambda_client, queue, callback_server):
    sqs, url, queue_arn = queue
    name = unique_name("zero")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    lambda_client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    token = uuid.uuid4().hex
    event = {"url": callback_server.url, "token": token}
    rid = send_event(lambda_client, name, event)
    message = receive(sqs, url)
    assert message is not None, "nothing reached the on-failure destination"
    record = json.loads(message["Body"])
    # Recorded (TestLambdaConcurrency::test_reserved_concurrency): no response, no attempt.
    assert record["requestContext"] == {
        "requestId": rid,
        "functionArn": arn(name, "$LATEST"),
        "condition": "ZeroReservedConcurrency",
        "approximateInvokeCount": 0,
    }
    assert record["requestPayload"] == event
    assert set(record) == {"version", "timestamp", "requestContext", "requestPayload"}
    assert not attempts_of(callback_server, token)


def test_the_function_log_records_each_attempt_and_its_outcome(
        lambda_client, flint_bin, server, callback_server):
    name = unique_name("attempts")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    token = uuid.uuid4().hex
    rid = send_event(lambda_client, name, {"url": callback_server.url, "token": token,
                                           "fail": True})
    assert len(wait_attempts(callback_server, token, 2, 15 + 2 * ASYNC_RETRY_DELAY_SECS)) == 2
    wanted = [f"ASYNC RequestId: {rid}\tAttempt: 1\tOutcome: error",
              f"ASYNC RequestId: {rid}\tAttempt: 2\tOutcome: error"]
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run([str(flint_bin), "logs", name, "--data-dir", str(server.data_dir)],
                             capture_output=True, text=True, timeout=30).stdout
        if all(w in out for w in wanted) or time.monotonic() > deadline:
            break
        callback_server.wait_for(lambda b: False, timeout=0.2)
    assert all(w in out for w in wanted), out[-2000:]
    # A synchronous invoke writes no such line.
    assert out.count("ASYNC RequestId") == 2
