"""Many execution environments of one function at once, as on AWS Lambda: 40 invokes in flight
together each get their own environment, all of them answer, and a second burst of 40 lands on
exactly those 40 warm environments (same ids, each one's invoke counter at 2) instead of starting
new ones.

Every invoke is held at a barrier (a TCP server in this test that the handler connects to over the
host's network, which functions share by default) until all 40 are running, so the placement is
deterministic however slowly the cold starts go on a busy machine."""

import concurrent.futures
import json
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config

from conftest import REGION, create_function, make_zip, unique_name

ENVIRONMENTS = 40

HANDLER = '''
import socket, uuid

# One id per execution environment (per runtime process), made at init.
ENVIRONMENT_ID = uuid.uuid4().hex
INVOCATIONS = 0


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    # Wait at the test's barrier until every invoke of the burst is running.
    with socket.create_connection(("127.0.0.1", event["barrier"]), timeout=60) as s:
        s.recv(1)
    return {"environment": ENVIRONMENT_ID, "invocations": INVOCATIONS}
'''


class Barrier:
    """Accepts connections until `parties` have arrived (or `timeout` passed), then releases all
    of them at once by sending one byte to each."""

    def __init__(self, parties: int, timeout: float):
        self.parties = parties
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(parties * 2)
        self.port = self.sock.getsockname()[1]
        self.arrived = 0
        self.all_arrived_after = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _run(self):
        conns = []
        deadline = self._started + self.timeout
        try:
            while len(conns) < self.parties:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.sock.settimeout(remaining)
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    break
                conns.append(conn)
            self.arrived = len(conns)
            if self.arrived == self.parties:
                self.all_arrived_after = time.monotonic() - self._started
        finally:
            for c in conns:
                try:
                    c.sendall(b"x")
                    c.close()
                except OSError:
                    pass
            self.sock.close()

    def join(self):
        self._thread.join(self.timeout + 5)


@pytest.fixture
def many_client(server):
    """A client whose connection pool holds a whole burst (the shared one keeps 32)."""
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id="AKIDFLINTTEST",
        aws_secret_access_key="flint-test-secret",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=70, connect_timeout=5,
                      max_pool_connections=ENVIRONMENTS + 8),
    )


def burst(client, name):
    """ENVIRONMENTS invokes at once, each held at one barrier; returns (payloads, barrier)."""
    barrier = Barrier(ENVIRONMENTS, timeout=20)
    payload = json.dumps({"barrier": barrier.port}).encode()

    def one(_):
        resp = client.invoke(FunctionName=name, Payload=payload)
        body = resp["Payload"].read()
        assert resp["StatusCode"] == 200, body
        assert "FunctionError" not in resp, body
        return json.loads(body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=ENVIRONMENTS) as pool:
        results = list(pool.map(one, range(ENVIRONMENTS)))
    barrier.join()
    return results, barrier


@pytest.mark.slow
def test_forty_concurrent_environments_answer_and_are_reused_warm(many_client):
    name = unique_name("many-envs")
    create_function(many_client, name, zip_bytes=make_zip({"index.py": HANDLER}), Timeout=60)
    try:
        started = time.monotonic()
        cold, barrier = burst(many_client, name)
        assert barrier.arrived == ENVIRONMENTS, (
            f"only {barrier.arrived} of {ENVIRONMENTS} invokes were running at once")
        cold_ids = {r["environment"] for r in cold}
        assert len(cold_ids) == ENVIRONMENTS, "each concurrent invoke needs its own environment"
        assert all(r["invocations"] == 1 for r in cold)

        warm, barrier = burst(many_client, name)
        assert barrier.arrived == ENVIRONMENTS
        warm_ids = {r["environment"] for r in warm}
        assert warm_ids == cold_ids, (
            f"{len(warm_ids - cold_ids)} invokes ran in new environments instead of warm ones")
        assert sorted(r["invocations"] for r in warm) == [2] * ENVIRONMENTS
        # The warm burst only waits for 40 warm invokes to reach the barrier.
        assert barrier.all_arrived_after is not None and barrier.all_arrived_after < 10
        assert time.monotonic() - started < 60
    finally:
        many_client.delete_function(FunctionName=name)
