"""Amazon MQ (RabbitMQ) event source mappings that really poll: messages published with a real
client (pika) to a real RabbitMQ (Debian's rabbitmq-server, started by tests/brokers.py) run the
function with AWS's `aws:rmq` event (`rmqMessagesByQueue` under `queue::virtual-host`,
basicProperties as AWS's Java client renders them, base64 data), logged in with the BASIC_AUTH
secret from Secrets Manager (moto), in the VIRTUAL_HOST given; a batch is acknowledged after the
function succeeded and put back on the queue (redelivered) when it failed. Flint reaches the
broker where FLINT_BROKER_ENDPOINTS says (it does not ask Amazon MQ)."""

import base64
import json
import time
import uuid

import pytest

from brokers import RECORDER, RabbitBroker, rabbitmq_dir
from conftest import FlintServer, create_function, make_zip, unique_name

BROKER_ARN = ("arn:aws:mq:us-east-1:000000000000:broker:flint-test:"
              "b-9bcfa592-423a-4942-879d-eb284b418fc8")


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    bin_dir = rabbitmq_dir()
    if bin_dir is None:
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server; "
                    ".ci/run installs it)")
    broker = RabbitBroker(bin_dir, tmp_path_factory.mktemp("rabbitmq"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def flint(flint_bin, tmp_path_factory, rabbit, aws_services):
    tmp = tmp_path_factory.mktemp("flint-rabbitmq")
    env = dict(aws_services.flint_env(),
               FLINT_BROKER_ENDPOINTS=f"{BROKER_ARN}={rabbit.endpoint}")
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log",
                      extra_args=[*FlintServer.HOST_NETWORK,
                                  "--aws-endpoint-url", aws_services.endpoint],
                      extra_env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(flint):
    return flint.client()


@pytest.fixture(autouse=True)
def _flint_log(request, flint):
    request.node._flint_server = flint
    request.node._flint_log_start = flint.log_size()


@pytest.fixture(scope="module")
def secret(aws_services, rabbit):
    sm = aws_services.client("secretsmanager")
    return sm.create_secret(Name=unique_name("rabbit"), SecretString=json.dumps(
        {"username": rabbit.USER, "password": rabbit.PASSWORD}))["ARN"]


@pytest.fixture(scope="module")
def recorder(client, callback_server):
    name = unique_name("rmq-rec")
    create_function(client, name, zip_bytes=make_zip({"index.py": RECORDER}),
                    Environment={"Variables": {"CALLBACK_URL": callback_server.url}})
    return name


@pytest.fixture
def mappings(client):
    made = []
    yield made
    for uuid_ in made:
        try:
            client.delete_event_source_mapping(UUID=uuid_)
        except Exception:
            pass


def declare(rabbit, queue, vhost="/"):
    conn, ch = rabbit.channel(vhost)
    ch.queue_declare(queue)
    conn.close()


def publish(rabbit, queue, bodies, vhost="/", properties=None):
    conn, ch = rabbit.channel(vhost)
    for body in bodies:
        ch.basic_publish("", queue, body, properties)
    conn.close()


def depth(rabbit, queue, vhost="/"):
    conn, ch = rabbit.channel(vhost)
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def events_for(callback_server, key):
    out = []
    for body in list(callback_server.received):
        event = json.loads(body).get("event", {})
        if key in event.get("rmqMessagesByQueue", {}):
            out.append(event)
    return out


def wait_events(callback_server, key, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        events = events_for(callback_server, key)
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"events of {key} so far: {json.dumps(events)[:3000]}")
        callback_server.wait_for(lambda b: False, timeout=0.2)


def messages_of(events, key):
    return [m for e in events for m in e["rmqMessagesByQueue"][key]]


def mapping(client, function, queue, secret, vhost=None, **extra):
    access = [{"Type": "BASIC_AUTH", "URI": secret}]
    if vhost is not None:
        access.append({"Type": "VIRTUAL_HOST", "URI": vhost})
    return client.create_event_source_mapping(
        FunctionName=function, EventSourceArn=BROKER_ARN, Queues=[queue],
        SourceAccessConfigurations=access, **extra)


def test_a_published_message_runs_the_function_with_the_rmq_event(
        client, rabbit, secret, recorder, callback_server, mappings):
    import pika
    queue = unique_name("q")
    declare(rabbit, queue)
    props = pika.BasicProperties(
        content_type="text/plain", delivery_mode=1, priority=3, expiration="60000",
        timestamp=2021, headers={"header1": "value1", "numberInHeader": 10})
    publish(rabbit, queue, [b'{"timeout":0}'], properties=props)
    mappings.append(mapping(client, recorder, queue, secret)["UUID"])
    key = f"{queue}::/"
    [event] = wait_events(callback_server, key, lambda e: len(e) >= 1)
    assert event == {
        "eventSource": "aws:rmq",
        "eventSourceArn": BROKER_ARN,
        "rmqMessagesByQueue": {key: [{
            "basicProperties": {
                "contentType": "text/plain",
                "contentEncoding": None,
                "headers": {"header1": {"bytes": list(b"value1")}, "numberInHeader": 10},
                "deliveryMode": 1,
                "priority": 3,
                "correlationId": None,
                "replyTo": None,
                "expiration": "60000",
                "messageId": None,
                "timestamp": "Jan 1, 1970, 12:33:41 AM",
                "type": None,
                "userId": None,
                "appId": None,
                "clusterId": None,
                "bodySize": 13,
            },
            "redelivered": False,
            "data": base64.b64encode(b'{"timeout":0}').decode(),
        }]},
    }
    deadline = time.monotonic() + 20
    while depth(rabbit, queue) != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_the_virtual_host_comes_from_the_access_configuration(
        client, rabbit, secret, recorder, callback_server, mappings):
    vhost = unique_name("vh")
    rabbit.add_vhost(vhost)
    queue = unique_name("q")
    declare(rabbit, queue, vhost)
    publish(rabbit, queue, [b"in a vhost"], vhost)
    mappings.append(mapping(client, recorder, queue, secret, vhost=vhost)["UUID"])
    key = f"{queue}::{vhost}"
    [event] = wait_events(callback_server, key, lambda e: len(e) >= 1)
    [m] = messages_of([event], key)
    assert base64.b64decode(m["data"]) == b"in a vhost"


def test_messages_come_in_batches_of_at_most_batch_size(
        client, rabbit, secret, recorder, callback_server, mappings):
    queue = unique_name("q")
    declare(rabbit, queue)
    publish(rabbit, queue, [f"m{i}".encode() for i in range(7)])
    mappings.append(mapping(client, recorder, queue, secret, BatchSize=3,
                            MaximumBatchingWindowInSeconds=1)["UUID"])
    key = f"{queue}::/"
    events = wait_events(callback_server, key, lambda e: len(messages_of(e, key)) >= 7)
    assert all(len(messages_of([e], key)) <= 3 for e in events)
    assert [base64.b64decode(m["data"]).decode() for m in messages_of(events, key)] == \
        [f"m{i}" for i in range(7)]


def test_a_failed_batch_goes_back_on_the_queue_and_comes_again_redelivered(
        client, rabbit, secret, recorder, callback_server, mappings):
    queue = unique_name("q")
    declare(rabbit, queue)
    publish(rabbit, queue, [b"fail-once " + uuid.uuid4().hex.encode()])
    mappings.append(mapping(client, recorder, queue, secret)["UUID"])
    key = f"{queue}::/"
    first, second = wait_events(callback_server, key, lambda e: len(e) >= 2)
    [m1], [m2] = messages_of([first], key), messages_of([second], key)
    assert (m1["redelivered"], m2["redelivered"]) == (False, True)
    assert m1["data"] == m2["data"]
    deadline = time.monotonic() + 20
    while depth(rabbit, queue) != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_filter_criteria_drop_messages_that_do_not_match(
        client, rabbit, secret, recorder, callback_server, mappings):
    queue = unique_name("q")
    declare(rabbit, queue)
    publish(rabbit, queue, [json.dumps({"kind": k}).encode() for k in ("skip", "keep", "skip")])
    mappings.append(mapping(client, recorder, queue, secret, FilterCriteria={"Filters": [
        {"Pattern": json.dumps({"data": {"kind": ["keep"]}})}]})["UUID"])
    key = f"{queue}::/"
    wait_events(callback_server, key, lambda e: len(e) >= 1)
    deadline = time.monotonic() + 20
    while depth(rabbit, queue) != 0:  # the dropped ones are acknowledged too
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [json.loads(base64.b64decode(m["data"]))
            for m in messages_of(events_for(callback_server, key), key)] == [{"kind": "keep"}]


def test_a_batch_stays_under_the_6_mb_invoke_payload_limit(
        client, rabbit, secret, recorder, callback_server, mappings):
    queue = unique_name("q")
    declare(rabbit, queue)
    publish(rabbit, queue, [bytes([65 + i]) * 900_000 for i in range(8)])
    mappings.append(mapping(client, recorder, queue, secret, BatchSize=100)["UUID"])
    key = f"{queue}::/"
    events = wait_events(callback_server, key, lambda e: len(messages_of(e, key)) >= 8)
    assert len(events) >= 2
    assert all(len(json.dumps(e)) <= 6 * 1024 * 1024 for e in events)
    assert [base64.b64decode(m["data"])[:1] for m in messages_of(events, key)] == \
        [bytes([65 + i]) for i in range(8)]
