"""DynamoDB Streams event source mappings end to end, against moto's DynamoDB: items written
with boto3 run the function with AWS's DynamoDB event (as recorded in
test_lambda_integration_dynamodbstreams.snapshot.json: eventVersion 1.1, `dynamodb` with
ApproximateCreationDateTime, Keys, NewImage, OldImage, SequenceNumber, SizeBytes,
StreamViewType); a failing batch is retried MaximumRetryAttempts times, then described to the
OnFailure destination (SQS, or S3 with the batch itself) and skipped; ReportBatchItemFailures
retries from the lowest failed record.

The function POSTs every event it gets to the suite's callback server, tagged with its TOKEN."""

import json
import time

import pytest

import esm_recorder

from conftest import REGION, unique_name

RECORDER = '''
import json, os, urllib.request


def should_fail(record):
    image = record.get("dynamodb", {}).get("NewImage", {})
    return image.get("fail", {}).get("BOOL", False)


def handler(event, context):
    body = {"token": os.environ["TOKEN"], "event": event}
    req = urllib.request.Request(os.environ["CALLBACK_URL"], data=json.dumps(body).encode(),
                                 method="POST")
    urllib.request.urlopen(req, timeout=5).read()
    failed = [r for r in event.get("Records", []) if should_fail(r)]
    mode = os.environ.get("MODE", "raise")
    if failed and mode == "raise":
        raise Exception("a record asked to fail")
    if mode == "partial":
        return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                                      for r in failed]}
    return None
'''


def Recorder(client, callback_server, mode="raise"):
    return esm_recorder.Recorder(client, callback_server, RECORDER, "ddb-fn", mode)


@pytest.fixture
def table(aws_services):
    ddb = aws_services.client("dynamodb")
    name = unique_name("table")
    out = ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    yield ddb, name, out["TableDescription"]["LatestStreamArn"]
    ddb.delete_table(TableName=name)


@pytest.fixture
def failures_queue(aws_services):
    sqs = aws_services.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("failures"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    return sqs, url, arn


def receive(sqs, url, n=1, timeout=30):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        got += [json.loads(m["Body"]) for m in out.get("Messages", [])]
    return got


def put(ddb, table, id_, **attrs):
    item = {"id": {"S": id_}, **attrs}
    ddb.put_item(TableName=table, Item=item)


def test_item_changes_reach_the_function_with_awss_event(lambda_client, table, callback_server):
    ddb, name, stream_arn = table
    fn = Recorder(lambda_client, callback_server)
    put(ddb, name, "a", data={"B": b"foobar"}, n={"N": "1"})
    put(ddb, name, "a", data={"B": b"foobar"}, n={"N": "2"})
    ddb.delete_item(TableName=name, Key={"id": {"S": "a"}})
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON",
        BatchSize=10)
    assert m["LastProcessingResult"] == "No records processed"
    try:
        records = fn.wait(fn.records, 3)
        assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
        for r in records:
            assert list(r) == ["eventID", "eventName", "eventVersion", "eventSource",
                               "awsRegion", "dynamodb", "eventSourceARN"]
            assert r["eventVersion"] == "1.1"
            assert r["eventSource"] == "aws:dynamodb"
            assert r["awsRegion"] == REGION
            assert r["eventSourceARN"] == stream_arn
            assert r["eventID"]
            d = r["dynamodb"]
            assert isinstance(d["ApproximateCreationDateTime"], (int, float))
            assert d["Keys"] == {"id": {"S": "a"}}
            assert isinstance(d["SizeBytes"], int)
            assert d["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        insert, modify, remove = (r["dynamodb"] for r in records)
        assert list(insert) == ["ApproximateCreationDateTime", "Keys", "NewImage",
                                "SequenceNumber", "SizeBytes", "StreamViewType"]
        assert insert["NewImage"] == {"data": {"B": "Zm9vYmFy"}, "id": {"S": "a"},
                                      "n": {"N": "1"}}
        assert modify["OldImage"]["n"] == {"N": "1"} and modify["NewImage"]["n"] == {"N": "2"}
        assert "NewImage" not in remove and remove["OldImage"]["n"] == {"N": "2"}
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        assert seqs == sorted(seqs)
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_a_failing_batch_is_retried_then_described_to_the_on_failure_queue(
        lambda_client, table, callback_server, failures_queue):
    ddb, name, stream_arn = table
    sqs, url, queue_arn = failures_queue
    fn = Recorder(lambda_client, callback_server)
    put(ddb, name, "bad", fail={"BOOL": True})
    put(ddb, name, "good", fail={"BOOL": False})
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON",
        BatchSize=1, MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    try:
        records = fn.wait(fn.records, 3)
        keys = [r["dynamodb"]["Keys"]["id"]["S"] for r in records]
        assert keys == ["bad", "bad", "good"]
        bad_seq = records[0]["dynamodb"]["SequenceNumber"]
        [record] = receive(sqs, url)
        assert list(record) == ["requestContext", "responseContext", "version", "timestamp",
                                "DDBStreamBatchInfo"]
        assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 2
        assert record["responseContext"]["functionError"] == "Unhandled"
        info = record["DDBStreamBatchInfo"]
        assert info["startSequenceNumber"] == info["endSequenceNumber"] == bad_seq
        assert info["batchSize"] == 1
        assert info["streamArn"] == stream_arn
        assert info["shardId"].startswith("shardId-")
        # DynamoDB's batch info times have no milliseconds.
        assert len(info["approximateArrivalOfFirstRecord"]) == len("2022-07-13T13:48:01Z")
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_report_batch_item_failures_retries_from_the_lowest_failed_record(
        lambda_client, table, callback_server, failures_queue):
    ddb, name, stream_arn = table
    sqs, url, queue_arn = failures_queue
    fn = Recorder(lambda_client, callback_server, mode="partial")
    for i in range(3):
        put(ddb, name, f"item{i}", fail={"BOOL": i == 1})
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON",
        BatchSize=3, MaximumBatchingWindowInSeconds=1, MaximumRetryAttempts=2,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    try:
        events = fn.wait(fn.events, 3)
        ids = [[r["dynamodb"]["Keys"]["id"]["S"] for r in e["Records"]] for e in events[:3]]
        assert ids == [["item0", "item1", "item2"], ["item1", "item2"], ["item1", "item2"]]
        [record] = receive(sqs, url)
        assert record["requestContext"]["approximateInvokeCount"] == 3
        assert record["responseContext"]["functionError"] is None
        assert record["DDBStreamBatchInfo"]["batchSize"] == 2
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_an_s3_on_failure_destination_gets_the_batch_too(lambda_client, aws_services, table,
                                                         callback_server):
    ddb, name, stream_arn = table
    s3 = aws_services.client("s3")
    bucket = unique_name("failures").lower()
    s3.create_bucket(Bucket=bucket)
    fn = Recorder(lambda_client, callback_server)
    put(ddb, name, "bad", fail={"BOOL": True})
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON",
        BatchSize=1, MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}})
    try:
        deadline = time.monotonic() + 30
        objects = []
        while not objects and time.monotonic() < deadline:
            objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            if not objects:
                fn.callback_server.wait_for(lambda b: False, timeout=0.3)
        [obj] = objects
        assert obj["Key"].startswith(f"aws/lambda/{m['UUID']}/shardId-")
        body = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert body["requestContext"]["approximateInvokeCount"] == 1
        [sent] = body["payload"]["Records"]
        assert sent["dynamodb"]["Keys"] == {"id": {"S": "bad"}}
        assert body["DDBStreamBatchInfo"]["batchSize"] == 1
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_records_the_filter_criteria_reject_are_skipped(lambda_client, table, callback_server):
    ddb, name, stream_arn = table
    fn = Recorder(lambda_client, callback_server)
    for i, kind in enumerate(["keep", "drop", "keep", "drop"]):
        put(ddb, name, f"item{i}", kind={"S": kind})
    pattern = {"dynamodb": {"NewImage": {"kind": {"S": ["keep"]}}}}
    m = lambda_client.create_event_source_mapping(
        FunctionName=fn.name, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON",
        BatchSize=1, FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]})
    try:
        put(ddb, name, "last", kind={"S": "keep"})
        records = fn.wait(fn.records, 3)
        assert [r["dynamodb"]["Keys"]["id"]["S"] for r in records] == ["item0", "item2", "last"]
    finally:
        lambda_client.delete_event_source_mapping(UUID=m["UUID"])
