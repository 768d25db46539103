"""CloudWatch Logs' StartLiveTail on Flint's endpoint, read with boto3's logs client (which parses
the event stream): a session over a function's group reports the lines it prints while the
session is open, filtered by the session's pattern and streams, and refuses a group that does not
exist as CloudWatch does.

botocore sends StartLiveTail to a `stream-` host prefix (`stream-logs.<region>.amazonaws.com`); with
`endpoint_url` pointing at Flint that would be `stream-127.0.0.1`, so the client here turns host
prefix injection off (`Config(inject_host_prefix=False)`), as a user pointing boto3 at Flint must
(or `AWS_DISABLE_HOST_PREFIX_INJECTION=true`)."""

import queue
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    invoke_json,
    make_zip,
    unique_name,
)

PRINTER = '''
import os

def handler(event, context):
    for line in event.get("print", []):
        print(line)
    return {"stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]}
'''


def logs_client(server):
    return boto3.session.Session().client(
        "logs", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id="AKIDFLINTTEST", aws_secret_access_key="flint-test-secret",
        config=Config(retries={"total_max_attempts": 1}, inject_host_prefix=False,
                      read_timeout=30))


@pytest.fixture(scope="module")
def logs(server):
    return logs_client(server)


@pytest.fixture(scope="module")
def printer(lambda_client, logs):
    """A function that has run once (its group exists) and the stream it wrote."""
    name = unique_name("livetail")
    create_function(lambda_client, name, runtime="python3.12",
                    zip_bytes=make_zip({"index.py": PRINTER}))
    _, out = invoke_json(lambda_client, name, {"print": ["first"]})
    # The log writer persists lines in the background: the group exists with its first line.
    deadline = time.monotonic() + 15
    while not logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]:
        assert time.monotonic() < deadline, "the function's log group never appeared"
        time.sleep(0.1)
    return name, out["stream"]


class Session:
    """A live tail read on a thread: every event of the stream lands in `events`."""

    def __init__(self, logs, **request):
        self.response = logs.start_live_tail(**request)
        self.stream = self.response["responseStream"]
        self.events = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for event in self.stream:
                self.events.put(event)
        except Exception as e:  # the stream closed under the reader at the end of a test
            self.events.put({"error": e})

    def next(self, timeout=15.0):
        return self.events.get(timeout=timeout)

    def results_until(self, done, timeout=20.0):
        """The sessionResults of the updates up to the one after which `done(results)`."""
        deadline = time.monotonic() + timeout
        results, updates = [], 0
        while not done(results):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen in {timeout}s after {updates} updates: {results}")
            event = self.next(left)
            assert "sessionUpdate" in event, event
            updates += 1
            update = event["sessionUpdate"]
            assert update["sessionMetadata"] == {"sampled": False}
            results.extend(update["sessionResults"])
        return results, updates

    def close(self):
        self.stream.close()


def test_lines_printed_while_the_tail_is_open_arrive_filtered(logs, lambda_client, printer):
    name, stream = printer
    group = f"/aws/lambda/{name}"
    session = Session(logs, logGroupIdentifiers=[group], logEventFilterPattern="KEEP")
    try:
        start = session.next()["sessionStart"]
        assert start["logGroupIdentifiers"] == [group]
        assert start["logEventFilterPattern"] == "KEEP"
        assert start["requestId"] and start["sessionId"]

        marker = uuid.uuid4().hex
        before = int(time.time() * 1000)
        invoke_json(lambda_client, name, {"print": [f"KEEP {marker} 1", f"DROP {marker}",
                                                    f"KEEP {marker} 2"]})
        results, updates = session.results_until(
            lambda r: sum(marker in e["message"] for e in r) >= 2)
        mine = [e for e in results if marker in e["message"]]
        assert [e["message"] for e in mine] == [f"KEEP {marker} 1", f"KEEP {marker} 2"]
        assert all("KEEP" in e["message"] for e in results), "the pattern filters"
        assert "first" not in [e["message"] for e in results], "only what came after the start"
        for e in mine:
            assert e["logStreamName"] == stream
            assert e["logGroupIdentifier"] == group
            assert before - 1000 <= e["timestamp"] <= int(time.time() * 1000)
            assert e["ingestionTime"] >= e["timestamp"]
    finally:
        session.close()


def test_an_arn_and_stream_filters_select_the_streams(logs, lambda_client, printer):
    name, stream = printer
    arn = f"arn:aws:logs:{REGION}:{DEFAULT_ACCOUNT}:log-group:/aws/lambda/{name}"
    elsewhere = Session(logs, logGroupIdentifiers=[arn], logStreamNamePrefixes=["1999/"])
    session = Session(logs, logGroupIdentifiers=[arn], logStreamNames=[stream])
    try:
        assert session.next()["sessionStart"]["logStreamNames"] == [stream]
        assert elsewhere.next()["sessionStart"]["logStreamNamePrefixes"] == ["1999/"]
        marker = uuid.uuid4().hex
        invoke_json(lambda_client, name, {"print": [marker]})
        results, _ = session.results_until(lambda r: any(marker in e["message"] for e in r))
        assert [e["logGroupIdentifier"] for e in results if marker in e["message"]] == [arn]
        # The other session saw its updates go by, empty: no stream of its prefix.
        for _ in range(2):
            assert elsewhere.next()["sessionUpdate"]["sessionResults"] == []
    finally:
        session.close()
        elsewhere.close()


def test_bad_requests_get_cloudwatchs_errors(logs, printer):
    name, _ = printer
    with pytest.raises(ClientError) as e:
        logs.start_live_tail(logGroupIdentifiers=[f"/aws/lambda/{unique_name('nope')}"])
    err = client_error(e)
    assert err["code"] == "ResourceNotFoundException", err
    assert err["status"] == 400

    with pytest.raises(ClientError) as e:
        logs.start_live_tail(logGroupIdentifiers=[f"/aws/lambda/{name}"],
                             logStreamNames=["a"], logStreamNamePrefixes=["b"])
    assert client_error(e)["code"] == "InvalidParameterException"

    with pytest.raises(ClientError) as e:
        logs.start_live_tail(
            logGroupIdentifiers=[f"arn:aws:logs:{REGION}:{DEFAULT_ACCOUNT}:log-group:/aws/lambda/{name}:*"])
    assert client_error(e)["code"] == "InvalidParameterException"
