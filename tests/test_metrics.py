"""`GET /metrics` on Flint's listener, read with Prometheus' own text-format parser (the
`prometheus_client` package): Lambda's per-function metrics move with invokes, errors and
throttles, Duration is a histogram, Flint's own metrics (environments, cold starts, Init
Duration) are there, metrics a function prints in CloudWatch's embedded metric format are
exported, and `flint serve --metrics off` turns the endpoint off."""

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    FlintServer,
    create_function,
    invoke_json,
    make_zip,
    unique_name,
)

PROBE = '''
import json


def handler(event, context):
    if "emf" in event:
        print(json.dumps(event["emf"]))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
'''


def scrape(endpoint):
    with urllib.request.urlopen(endpoint + "/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return list(text_string_to_metric_families(r.read().decode()))


def value(families, sample_name, **labels):
    """The value of the sample `sample_name` whose labels include `labels` (0 when absent)."""
    for fam in families:
        for s in fam.samples:
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def family(families, name):
    return next((f for f in families if f.name == name), None)


@pytest.fixture(scope="module")
def fn(lambda_client):
    name = unique_name("metrics")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=make_zip({"index.py": PROBE}))
    return name


def labels(fn):
    return {"account": DEFAULT_ACCOUNT, "region": REGION, "function_name": fn}


def test_invocations_errors_and_duration_move_with_invokes(server, lambda_client, fn):
    before = scrape(server.endpoint)
    for _ in range(3):
        invoke_json(lambda_client, fn, {})
    resp, _ = invoke_json(lambda_client, fn, {"fail": True})
    assert resp.get("FunctionError") == "Unhandled"
    after = scrape(server.endpoint)
    l = labels(fn)
    assert value(after, "lambda_invocations_total", **l) - value(before, "lambda_invocations_total", **l) == 4
    assert value(after, "lambda_errors_total", **l) - value(before, "lambda_errors_total", **l) == 1
    assert value(after, "lambda_duration_milliseconds_count", **l) - value(
        before, "lambda_duration_milliseconds_count", **l) == 4
    assert value(after, "lambda_duration_milliseconds_sum", **l) > 0
    assert value(after, "lambda_duration_milliseconds_bucket", le="+Inf", **l) == value(
        after, "lambda_duration_milliseconds_count", **l)
    assert family(after, "lambda_duration_milliseconds").type == "histogram"
    # The first invoke started the function's only environment.
    assert value(after, "flint_cold_starts_total", **l) >= 1
    assert value(after, "flint_init_duration_milliseconds_count", **l) >= 1
    assert value(after, "lambda_concurrent_executions", **l) == 0
    assert family(after, "flint_environments") is not None
    assert value(after, "flint_environments", state="idle") >= 1


def test_throttles_are_counted(server, lambda_client):
    name = unique_name("metrics-throttle")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=make_zip({"index.py": PROBE}))
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            lambda_client.invoke(FunctionName=name, Payload=b"{}")
        assert e.value.response["Error"]["Code"] == "TooManyRequestsException"
    after = scrape(server.endpoint)
    l = labels(name)
    assert value(after, "lambda_throttles_total", **l) == 2
    assert value(after, "lambda_invocations_total", **l) == 0, "throttles are not invocations"


def test_embedded_metric_format_lines_are_exported(server, lambda_client, fn):
    namespace = f"flinttest{uuid.uuid4().hex[:8]}"
    emf = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": namespace, "Dimensions": [["Service"]],
            "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}]}]},
        "Service": "checkout", "Latency": 42,
    }
    invoke_json(lambda_client, fn, {"emf": emf})
    emf["Latency"] = [8, 10]
    invoke_json(lambda_client, fn, {"emf": emf})
    name = f"{namespace}_Latency"
    deadline = time.monotonic() + 15
    while True:  # the log writer persists lines in the background
        got = scrape(server.endpoint)
        if value(got, f"{name}_count", Service="checkout") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert value(got, f"{name}_count", Service="checkout", unit="Milliseconds") == 3
    assert value(got, f"{name}_sum", Service="checkout") == 60
    assert value(got, f"{name}_last", Service="checkout") == 10


def test_metrics_can_be_turned_off(flint_bin, tmp_path):
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_args=["--metrics", "off"]).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.endpoint + "/metrics", timeout=10)
        assert e.value.code != 200
    finally:
        srv.stop()


SLEEPER = '''
import time


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"ok": True}
'''


def test_provisioned_concurrency_utilization_follows_busy_provisioned_environments(
        server, lambda_client):
    import threading
    name = unique_name("pcu")
    create_function(lambda_client, name, runtime="python3.12",
                    zip_bytes=make_zip({"index.py": SLEEPER}))
    lambda_client.publish_version(FunctionName=name)
    lambda_client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    deadline = time.monotonic() + 30
    while lambda_client.get_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1")["Status"] != "READY":
        assert time.monotonic() < deadline, "provisioned concurrency never READY"
        time.sleep(0.1)
    idle = scrape(server.endpoint)
    assert family(idle, "lambda_provisioned_concurrency_utilization") is not None
    assert value(idle, "lambda_provisioned_concurrency_utilization", **labels(name)) == 0.0
    # One invocation of version 1 sleeping on the one provisioned environment: fully used.
    busy = threading.Thread(target=invoke_json,
                            args=(lambda_client, name, {"sleep": 2}), kwargs={"Qualifier": "1"})
    busy.start()
    try:
        deadline = time.monotonic() + 10
        while value(scrape(server.endpoint), "lambda_provisioned_concurrency_utilization",
                    **labels(name)) != 1.0:
            assert time.monotonic() < deadline, "utilization never reached 1"
            time.sleep(0.05)
        assert value(scrape(server.endpoint), "lambda_provisioned_concurrent_executions",
                     **labels(name)) == 1.0
    finally:
        busy.join()
    assert value(scrape(server.endpoint), "lambda_provisioned_concurrency_invocations_total",
                 **labels(name)) == 1.0
    # A second invoke while the only provisioned environment is busy spills over.
    deadline = time.monotonic() + 10
    while value(scrape(server.endpoint), "lambda_provisioned_concurrency_utilization",
                **labels(name)) != 0.0:
        assert time.monotonic() < deadline, "the provisioned environment never came back"
        time.sleep(0.05)
    got = []
    busy = threading.Thread(target=lambda: got.append(invoke_json(
        lambda_client, name, {"sleep": 2}, Qualifier="1")))
    busy.start()
    try:
        deadline = time.monotonic() + 10
        while value(scrape(server.endpoint), "lambda_provisioned_concurrency_utilization",
                    **labels(name)) != 1.0:
            assert time.monotonic() < deadline, "utilization never reached 1 again"
            time.sleep(0.05)
        invoke_json(lambda_client, name, {}, Qualifier="1")
    finally:
        busy.join()
    after = scrape(server.endpoint)
    assert value(after, "lambda_provisioned_concurrency_invocations_total", **labels(name)) == 2.0
    assert value(after, "lambda_provisioned_concurrency_spillover_invocations_total",
                 **labels(name)) == 1.0
