"""SQS event source mappings that really poll, end to end against moto's SQS: a message sent with
boto3 runs the function with AWS's event (the shape recorded in
event_source_mapping/test_lambda_integration_sqs.snapshot.json), batches follow BatchSize and
MaximumBatchingWindowInSeconds, succeeded messages are deleted, failed ones come back after the
visibility timeout and reach the dead-letter queue through the queue's redrive policy, partial
batch responses delete only what succeeded, FIFO queues keep each message group's order, a
disabled mapping stops polling and resumes when enabled, and an idle mapping runs a new message
within a second (long polling).

The function POSTs every event it gets to the suite's callback server; each test's messages
carry a token of their own, so tests only see their own events."""

import collections
import json
import os
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REGION, create_function, make_zip, unique_name

# AWS's recorded events, where shared/ is at hand (beside the checkout, or named by
# FLINT_AWS_RECORDINGS); the record's key order is also written out below.
_SNAPSHOT = "lambda/event_source_mapping/test_lambda_integration_sqs.snapshot.json"
RECORDING = next((p / _SNAPSHOT for p in [
    Path(os.environ.get("FLINT_AWS_RECORDINGS", "/nonexistent")),
    Path(__file__).resolve().parent.parent.parent / "shared" / "aws-recordings",
    Path("/work/shared/aws-recordings"),
] if (p / _SNAPSHOT).is_file()), Path("/nonexistent"))

# MODE (an environment variable): "ok" returns normally, "fail" raises after reporting, "partial"
# reports every record whose body contains "fail" in batchItemFailures.
RECORDER = '''
import json, os, urllib.request


def handler(event, context):
    req = urllib.request.Request(os.environ["CALLBACK_URL"], data=json.dumps(event).encode(),
                                 method="POST")
    urllib.request.urlopen(req, timeout=5).read()
    mode = os.environ.get("MODE", "ok")
    if mode == "fail":
        raise Exception("intentional failure")
    if mode == "partial":
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                      for r in event["Records"] if "fail" in r["body"]]}
    return {"ok": len(event["Records"])}
'''

# The record keys, in order, of AWS's event (the recorded test_message_body_and_attributes).
RECORD_KEYS = ["messageId", "receiptHandle", "body", "attributes", "messageAttributes",
               "md5OfMessageAttributes", "md5OfBody", "eventSource", "eventSourceARN",
               "awsRegion"]


@pytest.fixture
def sqs(aws_services):
    return aws_services.client("sqs")


def make_queue(sqs, fifo=False, **attributes):
    name = unique_name("esmq") + (".fifo" if fifo else "")
    attrs = {k: str(v) for k, v in attributes.items()}
    if fifo:
        attrs["FifoQueue"] = "true"
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, queue_arn


def make_function(lambda_client, callback_server, mode="ok"):
    name = unique_name("esmfn")
    create_function(lambda_client, name, zip_bytes=make_zip({"index.py": RECORDER}),
                    Environment={"Variables": {"CALLBACK_URL": callback_server.url,
                                               "MODE": mode}})
    return name


def events_of(callback_server, token):
    """Every event the function got with a message of `token`, in the order they came."""
    return [json.loads(b) for b in list(callback_server.received) if token in b]


def records_of(callback_server, token):
    return [r for e in events_of(callback_server, token) for r in e["Records"]]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def wait_records(callback_server, token, n, timeout=20):
    return wait_until(lambda: (lambda r: r if len(r) >= n else None)(
        records_of(callback_server, token)), timeout, f"{n} record(s) of {token}")


def queue_counts(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def wait_empty(sqs, url, timeout=20):
    wait_until(lambda: queue_counts(sqs, url) == (0, 0), timeout, "the queue to be empty")


def wait_enabled(lambda_client, uuid_, timeout=20):
    return wait_until(lambda: (lambda m: m if m["State"] == "Enabled" else None)(
        lambda_client.get_event_source_mapping(UUID=uuid_)), timeout, "State Enabled")


@pytest.fixture
def mappings(lambda_client):
    made = []
    yield made
    for m in made:
        try:
            lambda_client.delete_event_source_mapping(UUID=m)
        except Exception:  # noqa: BLE001 (already gone)
            pass


def map_queue(lambda_client, mappings, function, queue_arn, **kwargs):
    resp = lambda_client.create_event_source_mapping(
        FunctionName=function, EventSourceArn=queue_arn, **kwargs)
    mappings.append(resp["UUID"])
    return resp["UUID"]


# ---------------------------------------------------------------------------------------------
# The event
# ---------------------------------------------------------------------------------------------

def test_a_message_runs_the_function_with_awss_event(lambda_client, sqs, callback_server,
                                                      mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    mapping = map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=1)
    token = uuid.uuid4().hex
    body = json.dumps({"token": token})
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
        "Title": {"DataType": "String", "StringValue": "The Whistler"},
        "WeeksOn": {"DataType": "Number", "StringValue": "6"},
        "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    })
    [record] = wait_records(callback_server, token, 1)

    assert list(record) == RECORD_KEYS
    if RECORDING.is_file():
        recorded = json.loads(RECORDING.read_text())[
            "tests/aws/services/lambda_/event_source_mapping/test_lambda_integration_sqs.py::"
            "test_message_body_and_attributes_passed_correctly"]["recorded-content"][
            "first_attempt"]["Messages"][0]["Body"]["event"]["Records"][0]
        assert list(record) == list(recorded)
        assert list(record["attributes"]) == list(recorded["attributes"])
        assert list(record["messageAttributes"]["Title"]) == list(
            recorded["messageAttributes"]["Title"])
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == body
    assert record["md5OfBody"] == sent["MD5OfMessageBody"]
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs", queue_arn, REGION)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert set(record["attributes"]) == {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                         "ApproximateFirstReceiveTimestamp"}
    assert record["messageAttributes"] == {
        "Blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [],
                 "dataType": "Binary"},
        "Title": {"stringValue": "The Whistler", "stringListValues": [],
                  "binaryListValues": [], "dataType": "String"},
        "WeeksOn": {"stringValue": "6", "stringListValues": [], "binaryListValues": [],
                    "dataType": "Number"},
    }
    # The batch succeeded: the message is deleted, and the mapping is healthy as AWS shows it.
    wait_empty(sqs, url)
    got = wait_enabled(lambda_client, mapping)
    assert got["StateTransitionReason"] == "USER_INITIATED"
    assert "LastProcessingResult" not in got


def test_an_idle_mapping_runs_a_new_message_within_a_second(lambda_client, sqs,
                                                            callback_server, mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    map_queue(lambda_client, mappings, fn, queue_arn)
    # The first message warms the function up; after it the pollers wait in long polls.
    warm = uuid.uuid4().hex
    sqs.send_message(QueueUrl=url, MessageBody=warm)
    wait_records(callback_server, warm, 1)
    wait_empty(sqs, url)
    token = uuid.uuid4().hex
    started = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody=token)
    wait_records(callback_server, token, 1, timeout=5)
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------

def test_batches_hold_at_most_batch_size_messages(lambda_client, sqs, callback_server,
                                                  mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    token = uuid.uuid4().hex
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": f"{token}-{i}"} for i in range(7)])
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=3)
    records = wait_records(callback_server, token, 7)
    # A standard queue delivers at least once (moto, like SQS, may hand a message out twice).
    assert {r["body"] for r in records} == {f"{token}-{i}" for i in range(7)}
    sizes = [len(e["Records"]) for e in events_of(callback_server, token)]
    assert max(sizes) <= 3
    assert max(sizes) > 1, sizes
    wait_empty(sqs, url)


def test_the_batching_window_waits_for_more_messages(lambda_client, sqs, callback_server,
                                                     mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=10,
              MaximumBatchingWindowInSeconds=2)
    token = uuid.uuid4().hex
    started = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody=f"{token}-0")
    wait_records(callback_server, token, 1, timeout=15)
    # The batch went out only when the window had passed, not with its first message.
    assert time.monotonic() - started >= 1.5


def test_batch_sizes_above_ten_gather_several_receives(lambda_client, sqs, callback_server,
                                                       mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    token = uuid.uuid4().hex
    for chunk in range(3):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"{token}-{chunk}-{i}"} for i in range(10)])
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=100,
              MaximumBatchingWindowInSeconds=1, ScalingConfig={"MaximumConcurrency": 2})
    wait_records(callback_server, token, 30)
    wait_empty(sqs, url)
    sizes = [len(e["Records"]) for e in events_of(callback_server, token)]
    bodies = {r["body"] for r in records_of(callback_server, token)}
    assert bodies == {f"{token}-{c}-{i}" for c in range(3) for i in range(10)}
    assert max(sizes) > 10, sizes
    wait_empty(sqs, url)


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------

def test_failed_messages_come_back_and_reach_the_dead_letter_queue(lambda_client, sqs,
                                                                   callback_server, mappings):
    dlq_url, dlq_arn = make_queue(sqs)
    url, queue_arn = make_queue(sqs, VisibilityTimeout=1, RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    fn = make_function(lambda_client, callback_server, mode="fail")
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=1)
    token = uuid.uuid4().hex
    sqs.send_message(QueueUrl=url, MessageBody=token)
    records = wait_records(callback_server, token, 2)
    assert [r["attributes"]["ApproximateReceiveCount"] for r in records[:2]] == ["1", "2"]
    got = wait_until(lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get(
        "Messages"), 20, "the message in the dead-letter queue")
    assert got[0]["Body"] == token
    wait_empty(sqs, url)
    # The function ran only as often as the redrive policy allows.
    assert len(records_of(callback_server, token)) == 2


def test_report_batch_item_failures_deletes_only_what_succeeded(lambda_client, sqs,
                                                                callback_server, mappings):
    dlq_url, dlq_arn = make_queue(sqs)
    url, queue_arn = make_queue(sqs, VisibilityTimeout=1, RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    fn = make_function(lambda_client, callback_server, mode="partial")
    token = uuid.uuid4().hex
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "0", "MessageBody": f"{token}-ok-0"},
        {"Id": "1", "MessageBody": f"{token}-fail-1"},
        {"Id": "2", "MessageBody": f"{token}-ok-2"},
    ])
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=10,
              FunctionResponseTypes=["ReportBatchItemFailures"])
    got = wait_until(lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get(
        "Messages"), 20, "the failed message in the dead-letter queue")
    assert [m["Body"] for m in got] == [f"{token}-fail-1"]
    wait_empty(sqs, url)
    runs = collections.Counter(r["body"] for r in records_of(callback_server, token))
    # The succeeded ones were deleted after their run (not retried: a standard queue may still
    # hand a message out twice); the failed one ran once per receive the redrive policy allows.
    assert set(runs) == {f"{token}-ok-0", f"{token}-ok-2", f"{token}-fail-1"}
    assert runs[f"{token}-fail-1"] == 2


def test_a_function_error_leaves_the_whole_batch_on_the_queue(lambda_client, sqs,
                                                             callback_server, mappings):
    url, queue_arn = make_queue(sqs, VisibilityTimeout=30)
    fn = make_function(lambda_client, callback_server, mode="fail")
    token = uuid.uuid4().hex
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": f"{token}-{i}"} for i in range(3)])
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=10)
    wait_records(callback_server, token, 3)
    # Not deleted: in flight until the visibility timeout gives them back to the queue.
    assert queue_counts(sqs, url) == (0, 3)


# ---------------------------------------------------------------------------------------------
# FIFO
# ---------------------------------------------------------------------------------------------

def test_fifo_queues_keep_the_order_of_each_message_group(lambda_client, sqs, callback_server,
                                                          mappings):
    url, queue_arn = make_queue(sqs, fifo=True)
    fn = make_function(lambda_client, callback_server)
    token = uuid.uuid4().hex
    for i in range(12):
        group = "a" if i % 3 else "b"
        sqs.send_message(QueueUrl=url, MessageBody=f"{token}-{group}-{i}",
                         MessageGroupId=group, MessageDeduplicationId=f"{token}-{i}")
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=2)
    records = wait_records(callback_server, token, 12)
    for group in "ab":
        got = [r["body"] for r in records if r["attributes"]["MessageGroupId"] == group]
        sent = [f"{token}-{group}-{i}" for i in range(12) if (group == "a") == bool(i % 3)]
        assert got == sent
    attributes = records[0]["attributes"]
    assert {"SequenceNumber", "MessageGroupId", "MessageDeduplicationId"} <= set(attributes)
    wait_empty(sqs, url)


def test_a_failed_fifo_message_holds_back_the_rest_of_its_group(lambda_client, sqs,
                                                                 callback_server, mappings):
    url, queue_arn = make_queue(sqs, fifo=True, VisibilityTimeout=1)
    fn = make_function(lambda_client, callback_server, mode="partial")
    token = uuid.uuid4().hex
    bodies = [f"{token}-0", f"{token}-fail-1", f"{token}-2"]
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": b, "MessageGroupId": "g",
         "MessageDeduplicationId": f"{token}-{i}"} for i, b in enumerate(bodies)])
    map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=10,
              FunctionResponseTypes=["ReportBatchItemFailures"])
    # The message after the failed one comes back with it, in order.
    records = wait_records(callback_server, token, 5)
    assert [r["body"] for r in records[:5]] == bodies + bodies[1:]
    lambda_client.delete_event_source_mapping(UUID=mappings.pop())


# ---------------------------------------------------------------------------------------------
# Lifecycle and problems
# ---------------------------------------------------------------------------------------------

def test_a_disabled_mapping_stops_polling_and_resumes_when_enabled(lambda_client, sqs,
                                                                   callback_server, mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    mapping = map_queue(lambda_client, mappings, fn, queue_arn)
    first = uuid.uuid4().hex
    sqs.send_message(QueueUrl=url, MessageBody=first)
    wait_records(callback_server, first, 1)
    lambda_client.update_event_source_mapping(UUID=mapping, Enabled=False)
    wait_until(lambda: lambda_client.get_event_source_mapping(UUID=mapping)["State"] ==
               "Disabled", 20, "State Disabled")
    token = uuid.uuid4().hex
    sqs.send_message(QueueUrl=url, MessageBody=token)
    # Nothing polls: the function does not run and the message stays on the queue (checked
    # for 3 s).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert sum(queue_counts(sqs, url)) == 1
        assert records_of(callback_server, token) == []
        time.sleep(0.2)
    lambda_client.update_event_source_mapping(UUID=mapping, Enabled=True)
    wait_records(callback_server, token, 1)
    wait_empty(sqs, url)


def test_a_missing_queue_is_reported_as_aws_reports_it(lambda_client, sqs, callback_server,
                                                       mappings):
    # A queue that does not exist is refused at create (test_event_source_mappings.py); one
    # deleted afterwards is the poller's to report.
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    mapping = map_queue(lambda_client, mappings, fn, queue_arn)
    sqs.delete_queue(QueueUrl=url)
    got = wait_until(lambda: (lambda m: m if m["StateTransitionReason"] != "USER_INITIATED"
                              else None)(lambda_client.get_event_source_mapping(UUID=mapping)),
                     20, "a PROBLEM in StateTransitionReason")
    assert got["StateTransitionReason"] == (
        "PROBLEM: Error occurred while ReceiveMessage. SQS Error Code: "
        "AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: "
        "The specified queue does not exist.")
    assert wait_enabled(lambda_client, mapping)["State"] == "Enabled"
    # Once the queue exists, the poller (retrying) finds it and runs its messages.
    url = sqs.create_queue(QueueName=queue_arn.split(":")[-1])["QueueUrl"]
    token = uuid.uuid4().hex
    sqs.send_message(QueueUrl=url, MessageBody=token)
    wait_records(callback_server, token, 1, timeout=45)
    wait_until(lambda: lambda_client.get_event_source_mapping(UUID=mapping)[
        "StateTransitionReason"] == "USER_INITIATED", 20, "the problem to clear")


def test_filtered_out_messages_are_deleted_without_running_the_function(
        server, lambda_client, sqs, callback_server, mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    token = uuid.uuid4().hex
    uuid_ = map_queue(lambda_client, mappings, fn, queue_arn, BatchSize=10, FilterCriteria={
        "Filters": [{"Pattern": json.dumps({"body": {"kind": ["keep"]}})}]})
    for i, kind in enumerate(["drop", "keep", "drop", "keep"]):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
            {"token": token, "kind": kind, "i": i}))
    records = wait_records(callback_server, token, 2)
    wait_empty(sqs, url)
    assert sorted(json.loads(r["body"])["i"] for r in records_of(callback_server, token)) == [
        1, 3]

    # Lambda's event source mapping metrics count the same (GET /metrics).
    def counter(name):
        for fam in text_string_to_metric_families(urllib.request.urlopen(
                server.endpoint + "/metrics", timeout=10).read().decode()):
            for s in fam.samples:
                if s.name == name and s.labels.get("event_source_mapping_uuid") == uuid_:
                    assert s.labels["function_name"] == fn
                    return s.value
        return None
    assert counter("lambda_event_source_polled_events_total") == 4
    assert counter("lambda_event_source_filtered_out_events_total") == 2
    assert counter("lambda_event_source_invoked_events_total") == 2
    assert counter("lambda_event_source_failed_invoke_events_total") == 0
    assert counter("lambda_iterator_age_milliseconds") is None  # streams only


def test_a_deleted_function_is_reported_and_its_messages_wait_for_it(
        lambda_client, sqs, callback_server, mappings):
    url, queue_arn = make_queue(sqs)
    fn = make_function(lambda_client, callback_server)
    mapping = map_queue(lambda_client, mappings, fn, queue_arn)
    wait_enabled(lambda_client, mapping)
    lambda_client.delete_function(FunctionName=fn)
    token = uuid.uuid4().hex
    sqs.send_message(QueueUrl=url, MessageBody=token)
    wait_until(lambda: lambda_client.get_event_source_mapping(UUID=mapping)[
        "StateTransitionReason"] == "PROBLEM: Function not found.", 20, "the problem reported")
    assert sum(queue_counts(sqs, url)) == 1
    # The same function again: the waiting message runs, and the problem clears.
    create_function(lambda_client, fn, zip_bytes=make_zip({"index.py": RECORDER}),
                    Environment={"Variables": {"CALLBACK_URL": callback_server.url,
                                               "MODE": "ok"}})
    wait_records(callback_server, token, 1, timeout=45)
    wait_empty(sqs, url)
    wait_until(lambda: lambda_client.get_event_source_mapping(UUID=mapping)[
        "StateTransitionReason"] == "USER_INITIATED", 20, "the problem to clear")
