"""Concurrency controls as AWS Lambda answers them: reserved concurrency (Put/Get/Delete,
GetFunction `Concurrency`, the account's UnreservedConcurrentExecutions and its minimum of 100,
throttling at invoke with 429 TooManyRequestsException and its Reason), provisioned concurrency
configs (only on versions and aliases; IN_PROGRESS until the environments are up, then READY,
or FAILED when the function's init fails; conflicts, limits), and optimistic
concurrency of function updates (two writers with one RevisionId: exactly one wins).
Messages are those recorded against real AWS; each test that counts uses a fresh account."""

import concurrent.futures
import re
import threading
import time

import botocore.exceptions
import pytest

from conftest import (
    REGION,
    client_error,
    create_function,
    invoke_json,
    make_zip,
    random_account,
    unique_name,
    wait_active,
)

LAST_MODIFIED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
QUALIFIED_NOT_ALLOWED = (
    "This operation is permitted on Lambda functions only. Aliases and versions do not support "
    "this operation. Please specify either a function name or an unqualified function ARN.")
ALIAS_OR_VERSION = "The function resource provided must be an alias or a published version."
NO_PC_CONFIG = "No Provisioned Concurrency Config found for this function"


def arn(account, name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{account}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs
    return err


@pytest.fixture
def account(make_client):
    """A fresh account: its limits and usage are not disturbed by other tests."""
    acct = random_account()
    return acct, make_client(account=acct), make_client(account=acct, validate=False)


def unreserved(client):
    return client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]


# --------------------------------------------------------------------------------------------
# Reserved concurrency
# --------------------------------------------------------------------------------------------

def test_reserved_concurrency_lifecycle(account):
    acct, client, _ = account
    name = unique_name("reserved")
    create_function(client, name)
    assert client.get_function_concurrency(FunctionName=name).keys() == {"ResponseMetadata"}
    assert "Concurrency" not in client.get_function(FunctionName=name)
    total = client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    assert unreserved(client) == total

    resp = client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert (status(resp), resp["ReservedConcurrentExecutions"]) == (200, 0)
    resp = client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=7)
    assert resp["ReservedConcurrentExecutions"] == 7
    got = client.get_function_concurrency(FunctionName=name)
    assert (status(got), got["ReservedConcurrentExecutions"]) == (200, 7)
    assert client.get_function(FunctionName=name)["Concurrency"] == {
        "ReservedConcurrentExecutions": 7}
    assert unreserved(client) == total - 7
    by_arn = client.get_function_concurrency(FunctionName=arn(acct, name))
    assert by_arn["ReservedConcurrentExecutions"] == 7

    deleted = client.delete_function_concurrency(FunctionName=name)
    assert status(deleted) == 204
    after = client.get_function_concurrency(FunctionName=name)
    assert (status(after), "ReservedConcurrentExecutions" in after) == (200, False)
    assert "Concurrency" not in client.get_function(FunctionName=name)
    assert unreserved(client) == total


def test_reserved_concurrency_keeps_100_unreserved(account):
    _, client, _ = account
    total = client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    first, second = unique_name("res1"), unique_name("res2")
    create_function(client, first)
    create_function(client, second)
    message = ("Specified ReservedConcurrentExecutions for function decreases account's "
               "UnreservedConcurrentExecution below its minimum value of [100].")
    err = expect_error(client.put_function_concurrency,
                       (400, "InvalidParameterValueException", message),
                       FunctionName=first, ReservedConcurrentExecutions=total - 99)
    # AWS answers this one without the "Type" field most errors carry (recorded).
    assert "Type" not in err["response"], err["response"]
    expect_error(client.put_function_concurrency,
                 (400, "InvalidParameterValueException", message),
                 FunctionName=first, ReservedConcurrentExecutions=total + 1)
    # Exactly down to the minimum is fine; then nothing more can be reserved elsewhere.
    client.put_function_concurrency(FunctionName=first, ReservedConcurrentExecutions=total - 110)
    client.put_function_concurrency(FunctionName=second, ReservedConcurrentExecutions=10)
    assert unreserved(client) == 100
    expect_error(client.put_function_concurrency,
                 (400, "InvalidParameterValueException", message),
                 FunctionName=second, ReservedConcurrentExecutions=11)
    # Replacing a function's own reservation counts only the difference.
    client.put_function_concurrency(FunctionName=first, ReservedConcurrentExecutions=total - 120)
    client.put_function_concurrency(FunctionName=second, ReservedConcurrentExecutions=20)
    assert unreserved(client) == 100
    # Deleting a function gives its reservation back.
    client.delete_function(FunctionName=first)
    assert unreserved(client) == total - 20


def test_reserved_concurrency_errors(account):
    acct, client, raw = account
    expect_error(client.put_function_concurrency,
                 (404, "ResourceNotFoundException",
                  f"Function not found: {arn(acct, 'doesnotexist', '$LATEST')}"),
                 FunctionName="doesnotexist", ReservedConcurrentExecutions=1)
    expect_error(client.get_function_concurrency,
                 (404, "ResourceNotFoundException",
                  f"Function not found: {arn(acct, 'doesnotexist')}"),
                 FunctionName="doesnotexist")
    name = unique_name("resq")
    create_function(client, name)
    client.publish_version(FunctionName=name)
    expect_error(client.put_function_concurrency,
                 (400, "InvalidParameterValueException", QUALIFIED_NOT_ALLOWED),
                 FunctionName=arn(acct, name, "1"), ReservedConcurrentExecutions=1)
    expect_error(raw.put_function_concurrency,
                 (400, "ValidationException",
                  "1 validation error detected: Value '-1' at 'reservedConcurrentExecutions' "
                  "failed to satisfy constraint: Member must have value greater than or equal "
                  "to 0"),
                 FunctionName=name, ReservedConcurrentExecutions=-1)


def test_reserved_zero_throttles_every_invoke(account):
    _, client, _ = account
    name = unique_name("throttled")
    create_function(client, name)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.invoke(FunctionName=name, Payload=b'{"a": 1}')
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        429, "TooManyRequestsException", "Rate Exceeded.")
    assert err["response"].get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded"
    client.delete_function_concurrency(FunctionName=name)
    resp, payload = invoke_json(client, name, {"a": 1})
    assert (resp["StatusCode"], payload) == (200, {"a": 1})


def test_reserved_one_lets_only_one_invoke_run_at_a_time(account):
    _, client, _ = account
    name = unique_name("single")
    create_function(client, name)
    # Warm it first so that both attempts below race on a running invoke, not on a cold start.
    invoke_json(client, name, {})
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    barrier = threading.Barrier(2)

    def attempt(_):
        barrier.wait()
        try:
            resp, payload = invoke_json(client, name, {"action": "sleep", "seconds": 1.5})
            return ("ok", resp["StatusCode"])
        except botocore.exceptions.ClientError as exc:
            return ("error", client_error_from(exc))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, range(2)))
    outcomes = sorted(kind for kind, _ in results)
    assert outcomes == ["error", "ok"], results
    error = next(detail for kind, detail in results if kind == "error")
    assert error[:2] == (429, "TooManyRequestsException")
    assert error[2] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def client_error_from(exc):
    r = exc.response
    return (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r.get("Reason"))


# --------------------------------------------------------------------------------------------
# Provisioned concurrency
# --------------------------------------------------------------------------------------------

def wait_ready(client, name, qualifier, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        conf = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if conf["Status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return conf
        time.sleep(0.1)


def test_provisioned_concurrency_lifecycle_on_a_version(account):
    acct, client, _ = account
    name = unique_name("provisioned")
    create_function(client, name)
    client.publish_version(FunctionName=name)

    put = client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    assert status(put) == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 1
    assert put["AllocatedProvisionedConcurrentExecutions"] == 0
    assert put["AvailableProvisionedConcurrentExecutions"] == 0
    assert put["Status"] == "IN_PROGRESS"
    assert LAST_MODIFIED.match(put["LastModified"])

    ready = wait_ready(client, name, "1")
    assert ready["Status"] == "READY"
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 1
    assert ready["AvailableProvisionedConcurrentExecutions"] == 1
    assert ready["RequestedProvisionedConcurrentExecutions"] == 1

    listed = client.list_provisioned_concurrency_configs(FunctionName=name)
    configs = listed["ProvisionedConcurrencyConfigs"]
    assert len(configs) == 1
    assert configs[0]["FunctionArn"] == arn(acct, name, "1")
    assert configs[0]["Status"] == "READY"

    # The provisioned version still answers invokes.
    resp, payload = invoke_json(client, name, {"x": 1}, Qualifier="1")
    assert (resp["StatusCode"], resp["ExecutedVersion"], payload) == (200, "1", {"x": 1})

    deleted = client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert status(deleted) == 204
    expect_error(client.get_provisioned_concurrency_config,
                 (404, "ProvisionedConcurrencyConfigNotFoundException", NO_PC_CONFIG),
                 FunctionName=name, Qualifier="1")
    assert client.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"] == []
    # Deleting again is idempotent, as on AWS.
    assert status(client.delete_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1")) == 204


def test_provisioned_concurrency_on_alias_conflicts_and_cascade(account):
    acct, client, _ = account
    name = unique_name("pcalias")
    create_function(client, name)
    client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                              ProvisionedConcurrentExecutions=1)
    expect_error(client.put_provisioned_concurrency_config,
                 (409, "ResourceConflictException",
                  "Alias can't be used for Provisioned Concurrency configuration on an already "
                  "Provisioned version"),
                 FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)
    client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")

    on_alias = client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)
    assert (status(on_alias), on_alias["Status"]) == (202, "IN_PROGRESS")
    expect_error(client.put_provisioned_concurrency_config,
                 (409, "ResourceConflictException",
                  "Version is pointed by a Provisioned Concurrency alias"),
                 FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    configs = client.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"] for c in configs] == [arn(acct, name, "live")]
    assert wait_ready(client, name, "live")["Status"] == "READY"
    resp, _ = invoke_json(client, name, {}, Qualifier="live")
    assert (resp["StatusCode"], resp["ExecutedVersion"]) == (200, "1")

    # Deleting the alias deletes its provisioned concurrency config.
    client.delete_alias(FunctionName=name, Name="live")
    expect_error(client.get_provisioned_concurrency_config,
                 (404, "ResourceNotFoundException",
                  f"Cannot find alias arn: {arn(acct, name, 'live')}"),
                 FunctionName=name, Qualifier="live")
    assert client.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"] == []


# Init sleeps, so the environments take about that long to be up; handlers answer at once.
SLOW_INIT_SECONDS = 1.0
SLOW_INIT = f"""import os, time
time.sleep({SLOW_INIT_SECONDS})
INIT_TYPE = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")

def handler(event, context):
    return {{"init_type": INIT_TYPE}}
"""
# Init raises only when started for provisioned concurrency (as AWS's own test does it), so
# on-demand invokes still work.
FAILING_PROVISIONED_INIT = """import os
INIT_TYPE = os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]
if INIT_TYPE == "provisioned-concurrency":
    raise Exception("Intentional failure upon provisioned concurrency initialization")

def handler(event, context):
    return {"init_type": INIT_TYPE}
"""


def poll_status(client, name, qualifier, until, timeout=20):
    """Polls GetProvisionedConcurrencyConfig until `until(conf)`; returns every answer seen
    as (seconds since the call, conf)."""
    start = time.monotonic()
    seen = []
    while True:
        conf = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        seen.append((time.monotonic() - start, conf))
        if until(conf) or time.monotonic() - start > timeout:
            return seen
        time.sleep(0.05)


def test_provisioned_concurrency_is_ready_only_once_its_environments_are_up(account):
    _, client, _ = account
    name = unique_name("pcslow")
    create_function(client, name, zip_bytes=make_zip({"index.py": SLOW_INIT}))
    client.publish_version(FunctionName=name)

    put_at = time.monotonic()
    put = client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2)
    assert (put["Status"], put["AvailableProvisionedConcurrentExecutions"],
            put["AllocatedProvisionedConcurrentExecutions"]) == ("IN_PROGRESS", 0, 0)
    seen = poll_status(client, name, "1", lambda c: c["Status"] != "IN_PROGRESS")
    ready_after = time.monotonic() - put_at
    final = seen[-1][1]
    assert final["Status"] == "READY", final
    # The environments' init takes a second: READY cannot come sooner.
    assert ready_after >= SLOW_INIT_SECONDS * 0.9, ready_after
    waiting = [c for _, c in seen[:-1]]
    assert waiting, "IN_PROGRESS while the environments start"
    for conf in waiting:
        assert conf["AllocatedProvisionedConcurrentExecutions"] == 0, conf
        assert conf["AvailableProvisionedConcurrentExecutions"] < 2, conf
        assert "StatusReason" not in conf, conf
    assert final["RequestedProvisionedConcurrentExecutions"] == 2
    assert final["AvailableProvisionedConcurrentExecutions"] == 2
    assert final["AllocatedProvisionedConcurrentExecutions"] == 2
    assert "StatusReason" not in final
    listed = client.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [(c["Status"], c["AvailableProvisionedConcurrentExecutions"],
             c["AllocatedProvisionedConcurrentExecutions"]) for c in listed] == [("READY", 2, 2)]

    # An invoke lands on an environment that is already initialised: no second of init.
    started = time.monotonic()
    resp, payload = invoke_json(client, name, {}, Qualifier="1")
    took = time.monotonic() - started
    assert (resp["StatusCode"], payload) == (200, {"init_type": "provisioned-concurrency"})
    assert took < SLOW_INIT_SECONDS, took

    # A lower count is allocated as soon as the extra environment is stopped.
    client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    seen = poll_status(client, name, "1", lambda c: c["Status"] == "READY"
                       and c["RequestedProvisionedConcurrentExecutions"] == 1, timeout=10)
    final = seen[-1][1]
    assert (final["Status"], final["AvailableProvisionedConcurrentExecutions"],
            final["AllocatedProvisionedConcurrentExecutions"]) == ("READY", 1, 1), final


def test_provisioned_concurrency_fails_when_the_function_init_fails(account):
    acct, client, _ = account
    name = unique_name("pcinitfail")
    create_function(client, name, zip_bytes=make_zip({"index.py": FAILING_PROVISIONED_INIT}))
    client.publish_version(FunctionName=name)

    put = client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    assert (put["Status"], put["AvailableProvisionedConcurrentExecutions"]) == ("IN_PROGRESS", 0)
    assert "StatusReason" not in put
    prewait = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert prewait["Status"] == "IN_PROGRESS"
    assert "StatusReason" not in prewait

    seen = poll_status(client, name, "1", lambda c: c["Status"] != "IN_PROGRESS")
    failed = seen[-1][1]
    assert failed["Status"] == "FAILED", failed
    assert failed["StatusReason"] == "FUNCTION_ERROR_INIT_FAILURE"
    assert failed["RequestedProvisionedConcurrentExecutions"] == 1
    assert failed["AvailableProvisionedConcurrentExecutions"] == 0
    assert failed["AllocatedProvisionedConcurrentExecutions"] == 0
    listed = client.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert len(listed) == 1
    assert listed[0]["FunctionArn"] == arn(acct, name, "1")
    assert (listed[0]["Status"], listed[0]["StatusReason"]) == (
        "FAILED", "FUNCTION_ERROR_INIT_FAILURE")

    # Invokes still run, on demand.
    resp, payload = invoke_json(client, name, {}, Qualifier="1")
    assert (resp["StatusCode"], payload) == (200, {"init_type": "on-demand"})

    # Deleting the config stops the attempts; the version has none any more.
    client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    expect_error(client.get_provisioned_concurrency_config,
                 (404, "ProvisionedConcurrencyConfigNotFoundException", NO_PC_CONFIG),
                 FunctionName=name, Qualifier="1")


def test_provisioned_concurrency_errors(account):
    acct, client, raw = account
    name = unique_name("pcerr")
    create_function(client, name)
    client.publish_version(FunctionName=name)

    expect_error(client.get_provisioned_concurrency_config,
                 (404, "ProvisionedConcurrencyConfigNotFoundException", NO_PC_CONFIG),
                 FunctionName=name, Qualifier="1")
    assert client.list_provisioned_concurrency_configs(
        FunctionName=name)["ProvisionedConcurrencyConfigs"] == []

    cases = [
        ("get", "doesnotexist", "noalias", (404, "ResourceNotFoundException",
                                            f"Cannot find alias arn: "
                                            f"{arn(acct, 'doesnotexist', 'noalias')}")),
        ("get", name, "noalias", (404, "ResourceNotFoundException",
                                  f"Cannot find alias arn: {arn(acct, name, 'noalias')}")),
        ("get", name, "10", (404, "ResourceNotFoundException",
                             f"Function not found: {arn(acct, name, '10')}")),
        ("get", name, "$LATEST", (400, "InvalidParameterValueException", ALIAS_OR_VERSION)),
        ("delete", "doesnotexist", "1", (404, "ResourceNotFoundException",
                                         f"Function not found: "
                                         f"{arn(acct, 'doesnotexist', '1')}")),
        ("delete", name, "noalias", (404, "ResourceNotFoundException",
                                     f"Cannot find alias arn: {arn(acct, name, 'noalias')}")),
        ("delete", name, "10", (404, "ResourceNotFoundException",
                                f"Function not found: {arn(acct, name, '10')}")),
        ("delete", name, "$LATEST", (400, "InvalidParameterValueException", ALIAS_OR_VERSION)),
        ("put", "doesnotexist", "noalias", (404, "ResourceNotFoundException",
                                            f"Cannot find alias arn: "
                                            f"{arn(acct, 'doesnotexist', 'noalias')}")),
        ("put", "doesnotexist", "1", (404, "ResourceNotFoundException",
                                      f"Function not found: {arn(acct, 'doesnotexist', '1')}")),
        ("put", name, "doesnotexist", (404, "ResourceNotFoundException",
                                       f"Cannot find alias arn: "
                                       f"{arn(acct, name, 'doesnotexist')}")),
        ("put", name, "10", (404, "ResourceNotFoundException",
                             f"Function not found: {arn(acct, name, '10')}")),
        ("put", name, "$LATEST", (400, "InvalidParameterValueException",
                                  "Provisioned Concurrency Configs cannot be applied to "
                                  "unpublished function versions.")),
    ]
    for op, fn_name, qualifier, expected in cases:
        call = getattr(client, f"{op}_provisioned_concurrency_config")
        extra = {"ProvisionedConcurrentExecutions": 1} if op == "put" else {}
        expect_error(call, expected, FunctionName=fn_name, Qualifier=qualifier, **extra)
    expect_error(client.list_provisioned_concurrency_configs,
                 (404, "ResourceNotFoundException",
                  f"Function not found: {arn(acct, 'doesnotexist')}"),
                 FunctionName="doesnotexist")
    expect_error(raw.put_provisioned_concurrency_config,
                 (400, "ValidationException",
                  "1 validation error detected: Value '0' at 'provisionedConcurrentExecutions' "
                  "failed to satisfy constraint: Member must have value greater than or equal "
                  "to 1"),
                 FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=0)


def test_provisioned_concurrency_limits(account):
    _, client, _ = account
    total = client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    name = unique_name("pclimit")
    create_function(client, name)
    client.publish_version(FunctionName=name)
    expect_error(client.put_provisioned_concurrency_config,
                 (400, "InvalidParameterValueException",
                  f"Specified ConcurrentExecutions for function is greater than account's "
                  f"unreserved concurrency [{total}]."),
                 FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=total + 1)
    expect_error(client.put_provisioned_concurrency_config,
                 (400, "InvalidParameterValueException",
                  "Specified ConcurrentExecutions for function decreases account's "
                  "UnreservedConcurrentExecution below its minimum value of [100]."),
                 FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=total - 99)

    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    expect_error(client.put_provisioned_concurrency_config,
                 (400, "InvalidParameterValueException",
                  "Requested Provisioned Concurrency should not be greater than the "
                  "reservedConcurrentExecution for function"),
                 FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2)
    client.delete_function_concurrency(FunctionName=name)
    client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                              ProvisionedConcurrentExecutions=2)
    expect_error(client.put_function_concurrency,
                 (400, "InvalidParameterValueException",
                  " ReservedConcurrentExecutions  1 should not be lower than function's total "
                  "provisioned concurrency [2]."),
                 FunctionName=name, ReservedConcurrentExecutions=1)


# --------------------------------------------------------------------------------------------
# Optimistic concurrency of updates
# --------------------------------------------------------------------------------------------

def test_two_writers_with_one_revision_id_exactly_one_wins(lambda_client):
    name = unique_name("race")
    create_function(lambda_client, name)
    for round_number in range(4):
        revision = wait_active(lambda_client, name)["RevisionId"]
        barrier = threading.Barrier(2)

        def update(writer):
            barrier.wait()
            try:
                resp = lambda_client.update_function_configuration(
                    FunctionName=name, RevisionId=revision,
                    Description=f"round {round_number} writer {writer}")
                return ("ok", resp["Description"])
            except botocore.exceptions.ClientError as exc:
                return ("error", exc.response["ResponseMetadata"]["HTTPStatusCode"],
                        exc.response["Error"]["Code"])

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = list(pool.map(update, ("a", "b")))
        winners = [r for r in results if r[0] == "ok"]
        losers = [r for r in results if r[0] == "error"]
        assert len(winners) == 1 and len(losers) == 1, results
        assert losers[0][1:] in [(412, "PreconditionFailedException"),
                                 (409, "ResourceConflictException")], results
        conf = wait_active(lambda_client, name)
        assert conf["Description"] == winners[0][1]
        assert conf["RevisionId"] != revision


def test_two_alias_updates_with_one_revision_id_exactly_one_wins(lambda_client):
    name = unique_name("aliasrace")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"index.py": "def handler(e, c):\n    return 2\n"}))
    wait_active(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"
    revision = lambda_client.create_alias(FunctionName=name, Name="live",
                                          FunctionVersion="1")["RevisionId"]
    barrier = threading.Barrier(2)

    def update(version):
        barrier.wait()
        try:
            return ("ok", lambda_client.update_alias(
                FunctionName=name, Name="live", FunctionVersion=version,
                RevisionId=revision)["FunctionVersion"])
        except botocore.exceptions.ClientError as exc:
            return ("error", exc.response["ResponseMetadata"]["HTTPStatusCode"],
                    exc.response["Error"]["Code"])

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(update, ("1", "2")))
    winners = [r for r in results if r[0] == "ok"]
    losers = [r for r in results if r[0] == "error"]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0][1:] == (412, "PreconditionFailedException"), results
    alias = lambda_client.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == winners[0][1]
    assert alias["RevisionId"] != revision
