"""How invokes are placed on execution environments, as on AWS Lambda: concurrent invokes run in
parallel environments, a warm environment is reused, reserved concurrency caps a function (429
`TooManyRequestsException`, Reason `ReservedFunctionConcurrentInvocationLimitExceeded`; 0 stops
it), an update retires the old environments, and versions and aliases each run their own code
(`ExecutedVersion`, the qualified ARN in the context, weighted alias routing)."""

import concurrent.futures
import time
import uuid
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    invoke_json,
    make_zip,
    unique_name,
    wait_active,
)


def probe_code(code_version: str) -> str:
    return f'''
import json, os, time, urllib.request, uuid

CODE_VERSION = {code_version!r}
# One id per execution environment (per runtime process), made at init.
ENVIRONMENT_ID = uuid.uuid4().hex
INVOCATIONS = 0


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    if "started_url" in event:
        # Tell the test this invoke is running.
        urllib.request.urlopen(urllib.request.Request(
            event["started_url"], data=json.dumps({{"started": event["started_token"]}}).encode(),
            method="POST"), timeout=10).read()
    time.sleep(event.get("sleep", 0))
    return {{
        "code": CODE_VERSION,
        "environment": ENVIRONMENT_ID,
        "invocations": INVOCATIONS,
        "function_version": context.function_version,
        "env_version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
        "invoked_arn": context.invoked_function_arn,
        "hostname": os.uname().nodename,
    }}
'''


def probe_zip(code_version: str = "v1") -> bytes:
    return make_zip({"index.py": probe_code(code_version)})


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def parallel(n, fn):
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


def throttled(fn):
    """Runs fn; returns the ClientError's response if it raised one, else None."""
    try:
        fn()
        return None
    except ClientError as e:
        return e.response


def assert_reserved_throttle(response):
    # Recorded: test_lambda_concurrency_block / test_reserved_concurrency.
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["Error"]["Code"] == "TooManyRequestsException"
    assert response["Error"]["Message"] == "Rate Exceeded."
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert response["Type"] == "User"


# ---------------------------------------------------------------------------------------------
# Parallel environments and warm reuse
# ---------------------------------------------------------------------------------------------

def test_concurrent_invokes_get_parallel_environments(lambda_client):
    name = unique_name("scale")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=30)
    n, sleep = 4, 1.5
    started = time.monotonic()
    results = parallel(n, lambda i: invoke_json(lambda_client, name, {"sleep": sleep})[1])
    elapsed = time.monotonic() - started
    assert elapsed < 2 * sleep + 1.0, f"{n} concurrent {sleep}s invokes took {elapsed:.1f}s"
    environments = {r["environment"] for r in results}
    assert len(environments) == n, "each concurrent invoke needs its own environment"
    assert len({r["hostname"] for r in results}) == n
    assert all(r["invocations"] == 1 for r in results)

    # Afterwards, sequential invokes reuse those warm environments.
    later = [invoke_json(lambda_client, name, {})[1] for _ in range(3)]
    for r in later:
        assert r["environment"] in environments
        assert r["invocations"] >= 2


def test_sequential_invokes_stay_on_one_warm_environment(lambda_client):
    name = unique_name("scale-warm")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    results = [invoke_json(lambda_client, name, {})[1] for _ in range(5)]
    assert len({r["environment"] for r in results}) == 1
    assert [r["invocations"] for r in results] == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------
# Reserved concurrency
# ---------------------------------------------------------------------------------------------

def test_reserved_concurrency_1_throttles_the_second_concurrent_invoke(lambda_client):
    name = unique_name("scale-res1")
    create_function(lambda_client, name, zip_bytes=probe_zip(), Timeout=30)
    resp = lambda_client.put_function_concurrency(FunctionName=name,
                                                  ReservedConcurrentExecutions=1)
    assert resp["ReservedConcurrentExecutions"] == 1
    invoke_json(lambda_client, name, {})  # warm: only the concurrency decides below

    def one(i):
        try:
            return invoke_json(lambda_client, name, {"sleep": 1.5})[1]
        except ClientError as e:
            return e.response

    results = parallel(2, one)
    ok = [r for r in results if "code" in r]
    rejected = [r for r in results if "Error" in r]
    assert len(ok) == 1 and len(rejected) == 1, results
    assert_reserved_throttle(rejected[0])
    # The slot is free again once the first invoke is done.
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["StatusCode"] == 200 and payload["code"] == "v1"


def test_reserved_concurrency_0_throttles_every_invoke(lambda_client):
    name = unique_name("scale-res0")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for _ in range(2):
        rejected = throttled(lambda: lambda_client.invoke(FunctionName=name, Payload=b"{}"))
        assert rejected is not None
        assert_reserved_throttle(rejected)
    # Removing the reservation lets it run again.
    lambda_client.delete_function_concurrency(FunctionName=name)
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["StatusCode"] == 200 and payload["code"] == "v1"


def test_reserved_concurrency_covers_every_version_of_the_function(lambda_client):
    name = unique_name("scale-resv")
    create_function(lambda_client, name, zip_bytes=probe_zip())
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for qualifier in (version, "$LATEST"):
        rejected = throttled(lambda: lambda_client.invoke(FunctionName=name, Qualifier=qualifier,
                                                          Payload=b"{}"))
        assert rejected is not None, qualifier
        assert_reserved_throttle(rejected)


# ---------------------------------------------------------------------------------------------
# Updates retire environments
# ---------------------------------------------------------------------------------------------

def test_update_function_code_retires_the_warm_environment(lambda_client):
    name = unique_name("scale-update")
    create_function(lambda_client, name, zip_bytes=probe_zip("v1"))
    before = invoke_json(lambda_client, name, {})[1]
    assert before["code"] == "v1"
    lambda_client.update_function_code(FunctionName=name, ZipFile=probe_zip("v2"))
    wait_active(lambda_client, name)
    after = [invoke_json(lambda_client, name, {})[1] for _ in range(3)]
    assert [r["code"] for r in after] == ["v2", "v2", "v2"]
    assert before["environment"] not in {r["environment"] for r in after}
    assert after[0]["invocations"] == 1


def test_update_while_an_invoke_runs_lets_it_finish_on_the_old_code(lambda_client,
                                                                    callback_server):
    name = unique_name("scale-inflight")
    create_function(lambda_client, name, zip_bytes=probe_zip("v1"), Timeout=30)
    invoke_json(lambda_client, name, {})
    token = uuid.uuid4().hex
    event = {"sleep": 1.5, "started_url": callback_server.url, "started_token": token}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(lambda: invoke_json(lambda_client, name, event)[1])
        assert callback_server.wait_for(lambda body: token in body, timeout=20), \
            "the invoke on the old code never started"
        lambda_client.update_function_code(FunctionName=name, ZipFile=probe_zip("v2"))
        wait_active(lambda_client, name)
        assert invoke_json(lambda_client, name, {})[1]["code"] == "v2"
        assert running.result(timeout=30)["code"] == "v1"
    assert invoke_json(lambda_client, name, {})[1]["code"] == "v2"


# ---------------------------------------------------------------------------------------------
# Versions and aliases
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def versioned(lambda_client):
    """Version 1 runs code v1, version 2 code v2, $LATEST code v3; alias `live` -> 1."""
    name = unique_name("scale-ver")
    create_function(lambda_client, name, zip_bytes=probe_zip("v1"))
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"
    lambda_client.update_function_code(FunctionName=name, ZipFile=probe_zip("v2"))
    wait_active(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"
    lambda_client.update_function_code(FunctionName=name, ZipFile=probe_zip("v3"))
    wait_active(lambda_client, name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return name


@pytest.mark.parametrize("qualifier,code", [("1", "v1"), ("2", "v2"), ("$LATEST", "v3")])
def test_each_version_runs_its_own_code(lambda_client, versioned, qualifier, code):
    resp, payload = invoke_json(lambda_client, versioned, {}, Qualifier=qualifier)
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == qualifier
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-executed-version"] == qualifier
    assert payload["code"] == code
    assert payload["function_version"] == qualifier
    assert payload["env_version"] == qualifier
    # Recorded (test_lambda_versions_with_code_changes): the ARN as invoked.
    assert payload["invoked_arn"] == arn(versioned, qualifier)


def test_unqualified_invoke_runs_latest_with_the_unqualified_arn(lambda_client, versioned):
    resp, payload = invoke_json(lambda_client, versioned, {})
    assert resp["ExecutedVersion"] == "$LATEST"
    assert payload["code"] == "v3"
    assert payload["invoked_arn"] == arn(versioned)


def test_qualified_function_name_forms(lambda_client, versioned):
    for function_name in (f"{versioned}:2", arn(versioned, "2")):
        resp, payload = invoke_json(lambda_client, function_name, {})
        assert resp["ExecutedVersion"] == "2"
        assert payload["code"] == "v2"
        assert payload["invoked_arn"] == arn(versioned, "2")


def test_versions_do_not_share_environments(lambda_client, versioned):
    environments = {q: invoke_json(lambda_client, versioned, {}, Qualifier=q)[1]["environment"]
                    for q in ("1", "2", "$LATEST")}
    assert len(set(environments.values())) == 3, environments


def test_alias_invoke_runs_its_version_with_the_alias_arn(lambda_client, versioned):
    resp, payload = invoke_json(lambda_client, versioned, {}, Qualifier="live")
    assert resp["ExecutedVersion"] == "1"
    assert payload["code"] == "v1"
    assert payload["function_version"] == "1"
    assert payload["invoked_arn"] == arn(versioned, "live")
    resp, payload = invoke_json(lambda_client, f"{versioned}:live", {})
    assert resp["ExecutedVersion"] == "1"
    assert payload["invoked_arn"] == arn(versioned, "live")


def test_moving_an_alias_moves_its_invokes(lambda_client, versioned):
    name = unique_name("scale-move")
    create_function(lambda_client, name, zip_bytes=probe_zip("v1"))
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_code(FunctionName=name, ZipFile=probe_zip("v2"))
    wait_active(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    assert invoke_json(lambda_client, name, {}, Qualifier="prod")[1]["code"] == "v1"
    lambda_client.update_alias(FunctionName=name, Name="prod", FunctionVersion="2")
    resp, payload = invoke_json(lambda_client, name, {}, Qualifier="prod")
    assert resp["ExecutedVersion"] == "2" and payload["code"] == "v2"


def test_alias_routing_weights_spread_invokes(lambda_client, versioned):
    alias = f"split-{uuid.uuid4().hex[:6]}"
    # Recorded (test_alias_routingconfig): AdditionalVersionWeights {"2": 0.5}.
    lambda_client.create_alias(FunctionName=versioned, Name=alias, FunctionVersion="1",
                               RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    executed = Counter()
    for _ in range(40):
        resp, payload = invoke_json(lambda_client, versioned, {}, Qualifier=alias)
        executed[resp["ExecutedVersion"]] += 1
        assert payload["code"] == {"1": "v1", "2": "v2"}[resp["ExecutedVersion"]]
        assert payload["function_version"] == resp["ExecutedVersion"]
        assert payload["invoked_arn"] == arn(versioned, alias)
    assert set(executed) == {"1", "2"}, executed
    # 40 draws at 50 %: 8..32 is a > 99.99 % interval.
    assert 8 <= executed["2"] <= 32, executed


def test_alias_with_zero_weight_never_routes(lambda_client, versioned):
    alias = f"zero-{uuid.uuid4().hex[:6]}"
    lambda_client.create_alias(FunctionName=versioned, Name=alias, FunctionVersion="2",
                               RoutingConfig={"AdditionalVersionWeights": {"1": 0.0}})
    seen = {invoke_json(lambda_client, versioned, {}, Qualifier=alias)[0]["ExecutedVersion"]
            for _ in range(8)}
    assert seen == {"2"}


def test_unknown_version_or_alias_is_not_found(lambda_client, versioned):
    for qualifier in ("9", "nosuchalias"):
        with pytest.raises(ClientError) as excinfo:
            lambda_client.invoke(FunctionName=versioned, Qualifier=qualifier, Payload=b"{}")
        err = client_error(excinfo)
        assert err["status"] == 404
        assert err["code"] == "ResourceNotFoundException"
        assert err["message"] == f"Function not found: {arn(versioned, qualifier)}"
