"""Kinesis event source mappings end to end, against moto's Kinesis: records put with boto3 run
the function with AWS's Kinesis event (as recorded in
test_lambda_integration_kinesis.snapshot.json), batched by BatchSize, from TRIM_HORIZON or
LATEST; a failing batch is retried MaximumRetryAttempts times, then described to the
OnFailure destination and skipped; ReportBatchItemFailures retries from the lowest failed
record; a restarted Flint resumes after the last processed record.

The function POSTs every event it gets to the suite's callback server, tagged with its TOKEN."""

import base64
import json
import time
import urllib.request

import pytest

import esm_recorder

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    FlintServer,
    unique_name,
)

RECORDER = '''
import base64, json, os, urllib.request


def data_of(record):
    try:
        return json.loads(base64.b64decode(record["kinesis"]["data"]))
    except Exception:
        return {}


def handler(event, context):
    body = {"token": os.environ["TOKEN"], "event": event}
    req = urllib.request.Request(os.environ["CALLBACK_URL"], data=json.dumps(body).encode(),
                                 method="POST")
    urllib.request.urlopen(req, timeout=5).read()
    failed = [r for r in event.get("Records", []) if data_of(r).get("fail")]
    mode = os.environ.get("MODE", "raise")
    if failed and mode == "raise":
        raise Exception("a record asked to fail")
    if mode == "partial":
        return {"batchItemFailures": [{"itemIdentifier": r["kinesis"]["sequenceNumber"]}
                                      for r in failed]}
    return None
'''

RECORD_MEMBERS = {"kinesis", "eventSource", "eventVersion", "eventID", "eventName",
                  "invokeIdentityArn", "awsRegion", "eventSourceARN"}


def Recorder(client, callback_server, mode="raise"):
    return esm_recorder.Recorder(client, callback_server, RECORDER, "kinesis-fn", mode)


@pytest.fixture
def kinesis(aws_services):
    return aws_services.client("kinesis")


@pytest.fixture
def stream(kinesis):
    name = unique_name("stream")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    yield arn
    kinesis.delete_stream(StreamARN=arn)


@pytest.fixture
def failures_queue(aws_services):
    sqs = aws_services.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("failures"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    return sqs, url, arn


def put(kinesis, stream_arn, data, key="test_0"):
    out = kinesis.put_record(StreamARN=stream_arn, Data=json.dumps(data).encode(),
                             PartitionKey=key)
    return out["SequenceNumber"]


def receive(sqs, url, n=1, timeout=30):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        got += [json.loads(m["Body"]) for m in out.get("Messages", [])]
    return got


def wait_result(client, uuid_, expected, timeout=20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = client.get_event_source_mapping(UUID=uuid_).get("LastProcessingResult")
        if last == expected:
            return last
        time.sleep(0.2)
    return last


def decode(record):
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


def test_records_reach_the_function_with_awss_event(lambda_client, kinesis, stream,
                                                     callback_server):
    fn = Recorder(lambda_client, callback_server)
    seqs = [put(kinesis, stream, {"record_id": i}, key=f"test_{i}") for i in range(3)]
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream, StartingPosition="TRIM_HORIZON",
        BatchSize=10)
    assert m["LastProcessingResult"] == "No records processed"
    try:
        records = fn.wait_records(3)
        assert [decode(r) for r in records] == [{"record_id": i} for i in range(3)]
        shard = "shardId-000000000000"
        for i, (r, seq) in enumerate(zip(records, seqs)):
            assert set(r) == RECORD_MEMBERS
            assert list(r["kinesis"]) == ["kinesisSchemaVersion", "partitionKey",
                                          "sequenceNumber", "data",
                                          "approximateArrivalTimestamp"]
            assert r["kinesis"]["kinesisSchemaVersion"] == "1.0"
            assert r["kinesis"]["partitionKey"] == f"test_{i}"
            assert r["kinesis"]["sequenceNumber"] == seq
            assert isinstance(r["kinesis"]["approximateArrivalTimestamp"], (int, float))
            assert abs(r["kinesis"]["approximateArrivalTimestamp"] - time.time()) < 300
            assert r["eventSource"] == "aws:kinesis"
            assert r["eventVersion"] == "1.0"
            assert r["eventName"] == "aws:kinesis:record"
            assert r["eventID"] == f"{shard}:{seq}"
            assert r["awsRegion"] == REGION
            assert r["eventSourceARN"] == stream
            assert r["invokeIdentityArn"].startswith(f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/")
        assert wait_result(lambda_client, m["UUID"], "OK") == "OK"
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_batches_hold_at_most_batch_size_records_in_order(lambda_client, kinesis, stream,
                                                          callback_server):
    fn = Recorder(lambda_client, callback_server)
    for i in range(7):
        put(kinesis, stream, {"n": i})
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream, StartingPosition="TRIM_HORIZON",
        BatchSize=3, MaximumBatchingWindowInSeconds=1)
    try:
        records = fn.wait_records(7)
        assert [decode(r)["n"] for r in records] == list(range(7))
        sizes = [len(e["Records"]) for e in fn.events()]
        assert max(sizes) <= 3 and sum(sizes) == 7
        assert sizes[0] == 3  # the window let the first batch fill up
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_latest_reads_only_records_put_after_the_mapping_started(lambda_client, kinesis, stream,
                                                                 callback_server):
    fn = Recorder(lambda_client, callback_server)
    put(kinesis, stream, {"before": True})
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream, StartingPosition="LATEST", BatchSize=10)
    try:
        # The poller's LATEST iterator is taken some time after CreateEventSourceMapping
        # returns (as on AWS): put probes until one arrives.
        deadline = time.monotonic() + 30
        while not fn.records() and time.monotonic() < deadline:
            put(kinesis, stream, {"probe": True})
            fn.wait_records(1, timeout=1.5)
        records = fn.records()
        assert records, "no record put after the mapping started reached the function"
        assert all(decode(r) == {"probe": True} for r in records)
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def mapping_metrics(server, uuid_):
    """The mapping's samples in GET /metrics: {name: value}."""
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen(server.endpoint + "/metrics", timeout=10).read().decode()
    return {s.name: s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.labels.get("event_source_mapping_uuid") == uuid_}


def test_a_failing_batch_is_retried_then_described_to_the_on_failure_queue(
        server, lambda_client, kinesis, stream, callback_server, failures_queue):
    sqs, url, queue_arn = failures_queue
    fn = Recorder(lambda_client, callback_server)
    bad = put(kinesis, stream, {"fail": True})
    good = put(kinesis, stream, {"fail": False})
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream, StartingPosition="TRIM_HORIZON",
        BatchSize=1, MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    try:
        records = fn.wait_records(3)
        # The bad record twice (the call and one retry), then the shard moves on.
        assert [r["kinesis"]["sequenceNumber"] for r in records] == [bad, bad, good]
        [record] = receive(sqs, url)
        assert list(record) == ["requestContext", "responseContext", "version", "timestamp",
                                "KinesisBatchInfo"]
        assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 2
        assert record["requestContext"]["functionArn"].endswith(f":function:{fn.name}")
        assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                             "functionError": "Unhandled"}
        assert record["version"] == "1.0"
        info = record["KinesisBatchInfo"]
        assert list(info) == ["shardId", "startSequenceNumber", "endSequenceNumber",
                              "approximateArrivalOfFirstRecord",
                              "approximateArrivalOfLastRecord", "batchSize", "streamArn"]
        assert info["shardId"] == "shardId-000000000000"
        assert info["startSequenceNumber"] == info["endSequenceNumber"] == bad
        assert info["batchSize"] == 1
        assert info["streamArn"] == stream
        assert info["approximateArrivalOfFirstRecord"].endswith("Z")
        assert wait_result(lambda_client, m["UUID"], "OK") == "OK"
        # Lambda's event source mapping metrics for the same story.
        got = mapping_metrics(server, m["UUID"])
        assert got["lambda_event_source_polled_events_total"] >= 2
        assert got["lambda_event_source_invoked_events_total"] == 3
        assert got["lambda_event_source_failed_invoke_events_total"] == 2
        assert got["lambda_event_source_dropped_events_total"] == 1
        assert 0 <= got["lambda_iterator_age_milliseconds"] < 300_000
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_report_batch_item_failures_retries_from_the_lowest_failed_record(
        lambda_client, kinesis, stream, callback_server, failures_queue):
    sqs, url, queue_arn = failures_queue
    fn = Recorder(lambda_client, callback_server, mode="partial")
    seqs = [put(kinesis, stream, {"fail": i == 2, "n": i}) for i in range(4)]
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream, StartingPosition="TRIM_HORIZON",
        BatchSize=10, MaximumBatchingWindowInSeconds=1, MaximumRetryAttempts=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    try:
        events = fn.wait_events(2)
        [first, retry] = [[r["kinesis"]["sequenceNumber"] for r in e["Records"]]
                          for e in events[:2]]
        assert first == seqs
        assert retry == seqs[2:]
        [record] = receive(sqs, url)
        info = record["KinesisBatchInfo"]
        assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (seqs[2], seqs[3])
        assert info["batchSize"] == 2
        assert record["requestContext"]["approximateInvokeCount"] == 2
        assert record["responseContext"]["functionError"] is None
        # Nothing more is sent once the batch is discarded.
        assert len(fn.wait_events(3, timeout=2)) == 2
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_a_mapping_whose_stream_is_deleted_reports_the_problem(lambda_client, kinesis,
                                                                callback_server):
    # A stream that does not exist is refused at create (test_event_source_mappings.py); one
    # deleted afterwards is the poller's to report.
    fn = Recorder(lambda_client, callback_server)
    name = unique_name("deleted")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=arn, StartingPosition="LATEST")
    kinesis.delete_stream(StreamARN=arn)
    try:
        deadline = time.monotonic() + 20
        result = None
        while time.monotonic() < deadline:
            result = lambda_client.get_event_source_mapping(UUID=m["UUID"])
            if result.get("LastProcessingResult", "").startswith("PROBLEM"):
                break
            time.sleep(0.2)
        assert result["LastProcessingResult"].startswith("PROBLEM: Stream not found")
        assert result["State"] in ("Creating", "Enabled")
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_a_restarted_flint_resumes_after_the_last_processed_record(
        flint_bin, tmp_path, aws_services, kinesis, stream, callback_server):
    def start():
        srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                          extra_args=[*FlintServer.HOST_NETWORK,
                                      "--aws-endpoint-url", aws_services.endpoint],
                          extra_env=aws_services.flint_env())
        return srv.start()

    srv = start()
    try:
        client = srv.client()
        fn = Recorder(client, callback_server)
        first = [put(kinesis, stream, {"n": i}) for i in range(2)]
        m = client.create_event_source_mapping(
            FunctionName=fn.name, EventSourceArn=stream, StartingPosition="TRIM_HORIZON",
            BatchSize=10)
        assert len(fn.wait_records(2)) == 2
        # "OK" is reported once the batch's checkpoint is stored.
        assert wait_result(client, m["UUID"], "OK") == "OK"
    finally:
        srv.stop()
    second = [put(kinesis, stream, {"n": i}) for i in range(2, 4)]
    srv = start()
    try:
        records = fn.wait_records(4)
        seqs = [r["kinesis"]["sequenceNumber"] for r in records]
        assert seqs == first + second
        # Nothing more arrives: the first two were checkpointed before the restart.
        assert len(fn.wait_records(5, timeout=2)) == 4
    finally:
        srv.stop()
