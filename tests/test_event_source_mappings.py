"""Event source mappings as AWS Lambda answers them: the defaults per source type (SQS, Kinesis,
DynamoDB Streams, self-managed Kafka), the State machine (Creating → Enabled, Disabling →
Disabled, Deleting), Update / List / Delete, every form of FunctionName, filter criteria,
duplicate mappings (409), validation errors, and sources that do not exist (refused, as the
service is asked). Messages and shapes are those recorded against
real AWS (test_lambda_api.snapshot.json and event_source_mapping/*.snapshot.json)."""

import datetime
import re
import time
import uuid

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    FlintServer,
    client_error,
    create_function,
    free_port,
    unique_name,
)

NOT_FOUND = "The resource you requested does not exist."
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SECRET = f"arn:aws:secretsmanager:{REGION}:{DEFAULT_ACCOUNT}:secret:kafka-auth"


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def esm_arn(mapping_id):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:event-source-mapping:{mapping_id}"


# The sources, made in moto's server: Flint asks the service whether a mapping's queue or stream
# exists before it accepts the mapping, as AWS does.
_SERVICES = {}


@pytest.fixture(autouse=True, scope="module")
def _sources(aws_services):
    _SERVICES["aws"] = aws_services
    yield
    _SERVICES.clear()


def queue():
    name = f"queue-{uuid.uuid4().hex[:10]}"
    _SERVICES["aws"].client("sqs").create_queue(QueueName=name)
    return f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT}:{name}"


def stream():
    name = f"stream-{uuid.uuid4().hex[:10]}"
    _SERVICES["aws"].client("kinesis").create_stream(StreamName=name, ShardCount=1)
    return f"arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:stream/{name}"


def table_stream():
    table = _SERVICES["aws"].client("dynamodb").create_table(
        TableName=f"table-{uuid.uuid4().hex[:8]}",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return table["TableDescription"]["LatestStreamArn"]


def body(resp):
    return {k: v for k, v in resp.items() if k not in ("ResponseMetadata", "LastModified")}


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs


def wait_state(client, mapping_id, wanted, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        state = client.get_event_source_mapping(UUID=mapping_id)["State"]
        if state == wanted:
            return
        assert time.monotonic() < deadline, f"mapping {mapping_id} stuck in {state}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def fn(lambda_client):
    """A function with version 1 and alias `myalias` → 1."""
    name = unique_name("esm")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="myalias", FunctionVersion="1")
    return name


# --------------------------------------------------------------------------------------------
# Defaults per source type
# --------------------------------------------------------------------------------------------

def test_sqs_mapping_defaults(lambda_client, fn):
    source = queue()
    resp = lambda_client.create_event_source_mapping(FunctionName=fn, EventSourceArn=source)
    try:
        assert status(resp) == 202
        mapping_id = resp["UUID"]
        assert UUID.match(mapping_id)
        assert body(resp) == {
            "UUID": mapping_id, "BatchSize": 10, "MaximumBatchingWindowInSeconds": 0,
            "EventSourceArn": source, "FunctionArn": arn(fn), "State": "Creating",
            "StateTransitionReason": "USER_INITIATED", "FunctionResponseTypes": [],
            "EventSourceMappingArn": esm_arn(mapping_id),
        }
        assert isinstance(resp["LastModified"], datetime.datetime)
        wait_state(lambda_client, mapping_id, "Enabled")
        got = lambda_client.get_event_source_mapping(UUID=mapping_id)
        assert status(got) == 200
        assert body(got) == {**body(resp), "State": "Enabled"}
    finally:
        lambda_client.delete_event_source_mapping(UUID=resp["UUID"])


@pytest.mark.parametrize("make_source, starting_position", [
    (stream, "LATEST"),
    (table_stream, "TRIM_HORIZON"),
], ids=["kinesis", "dynamodb"])
def test_stream_mapping_defaults(lambda_client, fn, make_source, starting_position):
    source = make_source()
    resp = lambda_client.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=source, StartingPosition=starting_position)
    try:
        mapping_id = resp["UUID"]
        assert status(resp) == 202
        assert body(resp) == {
            "UUID": mapping_id, "BatchSize": 100, "BisectBatchOnFunctionError": False,
            "DestinationConfig": {"OnFailure": {}}, "EventSourceArn": source,
            "EventSourceMappingArn": esm_arn(mapping_id), "FunctionArn": arn(fn),
            "FunctionResponseTypes": [], "LastProcessingResult": "No records processed",
            "MaximumBatchingWindowInSeconds": 0, "MaximumRecordAgeInSeconds": -1,
            "MaximumRetryAttempts": -1, "ParallelizationFactor": 1,
            "StartingPosition": starting_position, "State": "Creating",
            "StateTransitionReason": "User action", "TumblingWindowInSeconds": 0,
        }
    finally:
        lambda_client.delete_event_source_mapping(UUID=resp["UUID"])


def test_stream_mapping_with_values_and_on_failure_destination(lambda_client, fn):
    source = table_stream()
    failures = queue()
    resp = lambda_client.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=source, StartingPosition="TRIM_HORIZON", BatchSize=1,
        MaximumBatchingWindowInSeconds=1, MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": failures}})
    try:
        assert resp["BatchSize"] == 1
        assert resp["MaximumBatchingWindowInSeconds"] == 1
        assert resp["MaximumRetryAttempts"] == 1
        assert resp["DestinationConfig"] == {"OnFailure": {"Destination": failures}}
        assert resp["StateTransitionReason"] == "User action"
    finally:
        lambda_client.delete_event_source_mapping(UUID=resp["UUID"])


def test_self_managed_kafka_defaults_and_values(lambda_client, fn):
    expect_error(lambda_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException",
                  "Required 'sourceAccessConfigurations' parameter is missing."),
                 FunctionName=fn, Topics=["topic"],
                 SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:1000"]}})
    auth = [{"Type": "BASIC_AUTH", "URI": SECRET}]
    default = lambda_client.create_event_source_mapping(
        FunctionName=fn, Topics=["topic"], SourceAccessConfigurations=auth,
        SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:1000"]}})
    values = None
    try:
        assert status(default) == 202
        assert default["BatchSize"] == 100
        assert default["StartingPosition"] == "TRIM_HORIZON"
        assert default["Topics"] == ["topic"]
        assert default["SourceAccessConfigurations"] == auth
        assert default["SelfManagedEventSource"] == {
            "Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:1000"]}}
        # The consumer group defaults to the mapping's UUID.
        assert default["SelfManagedKafkaEventSourceConfig"] == {
            "ConsumerGroupId": default["UUID"]}
        assert default["LastProcessingResult"] == "No records processed"
        assert (default["State"], default["StateTransitionReason"]) == (
            "Creating", "USER_INITIATED")

        expect_error(lambda_client.create_event_source_mapping,
                     (409, "ResourceConflictException",
                      f'An event source mapping with event source ("kafka:1000"), function '
                      f'("{arn(fn)}"), topics ("topic") already exists. Please update or delete '
                      f'the existing mapping with UUID {default["UUID"]}'),
                     FunctionName=fn, Topics=["topic"], SourceAccessConfigurations=auth,
                     SelfManagedEventSource={
                         "Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:1000"]}})

        values = lambda_client.create_event_source_mapping(
            FunctionName=fn, Topics=["topic_2"], SourceAccessConfigurations=auth,
            StartingPosition="LATEST", BatchSize=1,
            SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:1000"]}},
            SelfManagedKafkaEventSourceConfig={"ConsumerGroupId": "random_id"})
        assert (values["BatchSize"], values["StartingPosition"], values["Topics"]) == (
            1, "LATEST", ["topic_2"])
        assert values["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "random_id"}
    finally:
        lambda_client.delete_event_source_mapping(UUID=default["UUID"])
        if values:
            lambda_client.delete_event_source_mapping(UUID=values["UUID"])


# --------------------------------------------------------------------------------------------
# Function name forms
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form, expected_qualifier", [
    ("{name}", None),
    ("{account}:function:{name}:$LATEST", "$LATEST"),
    ("{account}:function:{name}:1", "1"),
    ("{account}:function:{name}:myalias", "myalias"),
    ("{arn}", None),
    ("{arn}:1", "1"),
    ("{arn}:myalias", "myalias"),
], ids=["name", "partial-latest", "partial-version", "partial-alias", "arn", "arn-version",
        "arn-alias"])
def test_function_name_forms(lambda_client, fn, form, expected_qualifier):
    name = form.format(name=fn, account=DEFAULT_ACCOUNT, arn=arn(fn))
    resp = lambda_client.create_event_source_mapping(FunctionName=name, EventSourceArn=queue())
    try:
        assert resp["FunctionArn"] == arn(fn, expected_qualifier)
    finally:
        lambda_client.delete_event_source_mapping(UUID=resp["UUID"])


# --------------------------------------------------------------------------------------------
# Lifecycle: update, disable, list, delete
# --------------------------------------------------------------------------------------------

def test_update_disable_enable_and_delete(lambda_client, fn):
    source = queue()
    created = lambda_client.create_event_source_mapping(FunctionName=fn, EventSourceArn=source)
    mapping_id = created["UUID"]
    wait_state(lambda_client, mapping_id, "Enabled")

    updated = lambda_client.update_event_source_mapping(UUID=mapping_id, BatchSize=5)
    assert status(updated) == 202
    assert updated["BatchSize"] == 5
    assert updated["State"] == "Updating"
    wait_state(lambda_client, mapping_id, "Enabled")
    assert lambda_client.get_event_source_mapping(UUID=mapping_id)["BatchSize"] == 5

    disabling = lambda_client.update_event_source_mapping(UUID=mapping_id, Enabled=False)
    assert disabling["State"] == "Disabling"
    wait_state(lambda_client, mapping_id, "Disabled")
    enabling = lambda_client.update_event_source_mapping(UUID=mapping_id, Enabled=True)
    assert enabling["State"] == "Enabling"
    wait_state(lambda_client, mapping_id, "Enabled")

    # Point it at the alias instead.
    moved = lambda_client.update_event_source_mapping(UUID=mapping_id, FunctionName=f"{fn}:myalias")
    assert moved["FunctionArn"] == arn(fn, "myalias")
    wait_state(lambda_client, mapping_id, "Enabled")

    expect_error(lambda_client.update_event_source_mapping,
                 (400, "InvalidParameterValueException",
                  "Maximum batch window in seconds must be greater than 0 if maximum batch size "
                  "is greater than 10"),
                 UUID=mapping_id, BatchSize=20)

    deleted = lambda_client.delete_event_source_mapping(UUID=mapping_id)
    assert status(deleted) == 202
    assert deleted["State"] == "Deleting"
    assert deleted["UUID"] == mapping_id
    deadline = time.monotonic() + 15
    while True:
        try:
            lambda_client.get_event_source_mapping(UUID=mapping_id)
        except botocore.exceptions.ClientError as e:
            err = client_error_of(e)
            assert err == (404, "ResourceNotFoundException", NOT_FOUND)
            break
        assert time.monotonic() < deadline, "mapping never went away"
        time.sleep(0.1)


def client_error_of(exc):
    r = exc.response
    return (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"])


def test_created_disabled_mapping(lambda_client, fn):
    resp = lambda_client.create_event_source_mapping(FunctionName=fn, EventSourceArn=queue(),
                                                     Enabled=False)
    try:
        wait_state(lambda_client, resp["UUID"], "Disabled")
    finally:
        lambda_client.delete_event_source_mapping(UUID=resp["UUID"])


def test_list_filters_by_function_and_source(lambda_client):
    name = unique_name("esmlist")
    other = unique_name("esmother")
    create_function(lambda_client, name)
    create_function(lambda_client, other)
    source = queue()
    a = lambda_client.create_event_source_mapping(FunctionName=name, EventSourceArn=source)
    b = lambda_client.create_event_source_mapping(FunctionName=name, EventSourceArn=queue())
    c = lambda_client.create_event_source_mapping(FunctionName=other, EventSourceArn=source)
    try:
        by_fn = lambda_client.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
        assert sorted(m["UUID"] for m in by_fn) == sorted([a["UUID"], b["UUID"]])
        by_source = lambda_client.list_event_source_mappings(
            EventSourceArn=source)["EventSourceMappings"]
        assert sorted(m["UUID"] for m in by_source) == sorted([a["UUID"], c["UUID"]])
        both = lambda_client.list_event_source_mappings(
            FunctionName=other, EventSourceArn=source)["EventSourceMappings"]
        assert [m["UUID"] for m in both] == [c["UUID"]]
        page = lambda_client.list_event_source_mappings(FunctionName=name, MaxItems=1)
        assert len(page["EventSourceMappings"]) == 1 and page.get("NextMarker")
        rest = lambda_client.list_event_source_mappings(FunctionName=name,
                                                        Marker=page["NextMarker"])
        assert {m["UUID"] for m in page["EventSourceMappings"] + rest["EventSourceMappings"]} == {
            a["UUID"], b["UUID"]}
    finally:
        for m in (a, b, c):
            lambda_client.delete_event_source_mapping(UUID=m["UUID"])


def test_mapping_survives_function_deletion(lambda_client):
    name = unique_name("esmorphan")
    create_function(lambda_client, name)
    source = stream()
    created = lambda_client.create_event_source_mapping(
        FunctionName=name, EventSourceArn=source, StartingPosition="TRIM_HORIZON")
    try:
        wait_state(lambda_client, created["UUID"], "Enabled")
        lambda_client.delete_function(FunctionName=name)
        # As on AWS: the mapping stays (and can still be read and deleted).
        got = lambda_client.get_event_source_mapping(UUID=created["UUID"])
        assert got["FunctionArn"] == arn(name)
    finally:
        deleted = lambda_client.delete_event_source_mapping(UUID=created["UUID"])
        assert deleted["State"] == "Deleting"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

def test_unknown_uuid_is_404(lambda_client):
    unknown = str(uuid.uuid4())
    expected = (404, "ResourceNotFoundException", NOT_FOUND)
    expect_error(lambda_client.get_event_source_mapping, expected, UUID=unknown)
    expect_error(lambda_client.delete_event_source_mapping, expected, UUID=unknown)
    expect_error(lambda_client.update_event_source_mapping, expected, UUID=unknown, BatchSize=1)


def test_create_errors(raw_client, fn):
    expect_error(raw_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException", "Unrecognized event source."),
                 FunctionName=fn)
    expect_error(raw_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException", "Function does not exist"),
                 FunctionName="doesnotexist", EventSourceArn=queue())
    expect_error(raw_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException",
                  "Unsupported DestinationConfig parameter for given event source mapping "
                  "type."),
                 FunctionName=fn, EventSourceArn=queue(),
                 DestinationConfig={"OnFailure": {"Destination": queue()}})
    expect_error(raw_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException",
                  "Maximum batch window in seconds must be greater than 0 if maximum batch size "
                  "is greater than 10"),
                 FunctionName=fn, EventSourceArn=queue(), BatchSize=20)


@pytest.mark.parametrize("make_source", [stream, table_stream], ids=["kinesis", "dynamodb"])
def test_starting_position_validation(raw_client, fn, make_source):
    source = make_source()
    expect_error(raw_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException",
                  "1 validation error detected: Value null at 'startingPosition' failed to "
                  "satisfy constraint: Member must not be null."),
                 FunctionName=fn, EventSourceArn=source)
    expect_error(raw_client.create_event_source_mapping,
                 (400, "ValidationException",
                  "1 validation error detected: Value 'invalid' at 'startingPosition' failed to "
                  "satisfy constraint: Member must satisfy enum value set: [LATEST, "
                  "AT_TIMESTAMP, TRIM_HORIZON]"),
                 FunctionName=fn, EventSourceArn=source, StartingPosition="invalid")


def test_at_timestamp_is_not_supported_for_dynamodb(raw_client, fn):
    source = table_stream()
    expect_error(raw_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException",
                  f"Unsupported starting position for arn type: {source}"),
                 FunctionName=fn, EventSourceArn=source, StartingPosition="AT_TIMESTAMP",
                 StartingPositionTimestamp=datetime.datetime(2024, 1, 1))


@pytest.mark.parametrize("make_source, message", [
    (queue, 'An event source mapping with SQS arn (" {source} ") and function (" {fn} ") '
            'already exists. Please update or delete the existing mapping with UUID {uuid}'),
    (stream, 'The event source arn (" {source} ") and function (" {fn} ") provided mapping '
             'already exists. Please update or delete the existing mapping with UUID {uuid}'),
    (table_stream, 'The event source arn (" {source} ") and function (" {fn} ") provided '
                   'mapping already exists. Please update or delete the existing mapping with '
                   'UUID {uuid}'),
], ids=["sqs", "kinesis", "dynamodb"])
def test_duplicate_mapping_is_409(lambda_client, fn, make_source, message):
    source = make_source()
    extra = {} if make_source is queue else {"StartingPosition": "LATEST"}
    first = lambda_client.create_event_source_mapping(FunctionName=fn, EventSourceArn=source,
                                                      **extra)
    try:
        expect_error(lambda_client.create_event_source_mapping,
                     (409, "ResourceConflictException",
                      message.format(source=source, fn=fn, uuid=first["UUID"])),
                     FunctionName=fn, EventSourceArn=source, **extra)
        # Another function on the same source is fine.
        other = unique_name("esmdup")
        create_function(lambda_client, other)
        second = lambda_client.create_event_source_mapping(FunctionName=other,
                                                           EventSourceArn=source, **extra)
        lambda_client.delete_event_source_mapping(UUID=second["UUID"])
    finally:
        lambda_client.delete_event_source_mapping(UUID=first["UUID"])


# --------------------------------------------------------------------------------------------
# Filter criteria
# --------------------------------------------------------------------------------------------

def test_filter_criteria_round_trip(lambda_client, fn):
    pattern = '{"body": {"testItem": ["test24"]}}'
    resp = lambda_client.create_event_source_mapping(
        FunctionName=fn, EventSourceArn=queue(), MaximumBatchingWindowInSeconds=1,
        FilterCriteria={"Filters": [{"Pattern": pattern}]})
    try:
        assert resp["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
        assert resp["MaximumBatchingWindowInSeconds"] == 1
        got = lambda_client.get_event_source_mapping(UUID=resp["UUID"])
        assert got["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
        new_pattern = '{"body": {"other": [{"prefix": "x"}]}}'
        updated = lambda_client.update_event_source_mapping(
            UUID=resp["UUID"], FilterCriteria={"Filters": [{"Pattern": new_pattern}]})
        assert updated["FilterCriteria"] == {"Filters": [{"Pattern": new_pattern}]}
    finally:
        lambda_client.delete_event_source_mapping(UUID=resp["UUID"])


@pytest.mark.parametrize("pattern", [
    "single-string",
    '[{"eventName": ["INSERT"=123}]',
    '{"body": "not-a-list"}',
    "this is a test string",
], ids=["string", "broken-json", "scalar-value", "sentence"])
def test_invalid_filter_patterns(raw_client, fn, pattern):
    expect_error(raw_client.create_event_source_mapping,
                 (400, "InvalidParameterValueException", "Invalid filter pattern definition."),
                 FunctionName=fn, EventSourceArn=queue(),
                 FilterCriteria={"Filters": [{"Pattern": pattern}]})


# --------------------------------------------------------------------------------------------
# Sources that do not exist (the service is asked at create)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("missing, message", [
    (f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT}:not-existing-queue-{uuid.uuid4().hex[:8]}",
     "Error occurred while ReceiveMessage. SQS Error Code: "
     "AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not "
     "exist."),
    (f"arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:stream/test-foobar-{uuid.uuid4().hex[:8]}",
     "Stream not found: {source}"),
    (f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/test-table-{uuid.uuid4().hex[:8]}"
     "/stream/2025-02-22T03:03:25.490", "Stream not found: {source}"),
], ids=["sqs", "kinesis", "dynamodb"])
def test_a_source_that_does_not_exist_is_refused_as_aws_refuses_it(raw_client, fn, missing,
                                                                   message):
    extra = {} if ":sqs:" in missing else {"StartingPosition": "LATEST"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.create_event_source_mapping(FunctionName=fn, EventSourceArn=missing, **extra)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException", message.format(source=missing))
    assert err["type"] == "User"  # recorded with "Type": "User"
    assert not [m for m in raw_client.list_event_source_mappings(FunctionName=fn)[
        "EventSourceMappings"] if m["EventSourceArn"] == missing]


def test_a_source_whose_service_does_not_answer_is_refused_naming_the_endpoint(
        flint_bin, session_tmp):
    """No service at the endpoint (nothing listens): the mapping could never be polled, so it is
    refused, saying where Flint looked."""
    dead = f"http://127.0.0.1:{free_port()}"
    srv = FlintServer(flint_bin, session_tmp / f"data-{uuid.uuid4().hex[:6]}",
                      session_tmp / "flint-serve-unreachable.log",
                      extra_args=["--aws-endpoint-url", dead],
                      extra_env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    srv.start()
    try:
        client = srv.client()
        name = unique_name("esm-dead")
        create_function(client, name)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.create_event_source_mapping(
                FunctionName=name,
                EventSourceArn=f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT}:somewhere")
        err = client_error(e)
        assert (err["status"], err["code"]) == (400, "InvalidParameterValueException")
        assert dead in err["message"] and "did not answer" in err["message"], err["message"]
    finally:
        srv.stop()
