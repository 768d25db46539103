"""Function lifecycle through the Lambda REST API with boto3: create, wait until Active, get,
list (paginated), update code and configuration (RevisionId guards), delete — with the shapes
and defaults AWS returns (recorded against real AWS Lambda)."""

import re
import time
import urllib.error
import urllib.request

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    ROLE,
    client_error,
    code_sha256,
    create_function,
    fixture_text,
    invoke_json,
    make_zip,
    not_found_message,
    python_zip,
    random_account,
    unique_name,
    wait_active,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LAST_MODIFIED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
PRECONDITION_MESSAGE = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


def arn(name, account=DEFAULT_ACCOUNT, region=REGION):
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def without_metadata(resp):
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def v2_zip():
    return make_zip({"index.py": "def handler(event, context):\n    return {'version': 2}\n"})


def test_create_function_returns_201_with_aws_defaults(lambda_client):
    name = unique_name("create")
    zip_bytes = python_zip()
    resp = create_function(lambda_client, name, zip_bytes=zip_bytes, wait=False)

    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["FunctionName"] == name
    assert resp["FunctionArn"] == arn(name)
    assert resp["Runtime"] == "python3.11"
    assert resp["Role"] == ROLE
    assert resp["Handler"] == "index.handler"
    assert resp["Description"] == ""
    assert resp["Timeout"] == 3
    assert resp["MemorySize"] == 128
    assert resp["Architectures"] == ["x86_64"]
    assert resp["EphemeralStorage"] == {"Size": 512}
    assert resp["TracingConfig"] == {"Mode": "PassThrough"}
    assert resp["PackageType"] == "Zip"
    assert resp["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    assert resp["Version"] == "$LATEST"
    assert resp["CodeSha256"] == code_sha256(zip_bytes)
    assert resp["CodeSize"] == len(zip_bytes)
    assert UUID.match(resp["RevisionId"]), resp["RevisionId"]
    assert LAST_MODIFIED.match(resp["LastModified"]), resp["LastModified"]
    assert resp["State"] == "Pending"
    assert resp["StateReason"] == "The function is being created."
    assert resp["StateReasonCode"] == "Creating"


def test_create_response_carries_snapstart_and_runtime_version_like_aws(lambda_client):
    name = unique_name("shape")
    resp = create_function(lambda_client, name, wait=False)
    assert resp["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    assert resp["RuntimeVersionConfig"]["RuntimeVersionArn"].startswith(
        f"arn:aws:lambda:{REGION}::runtime:")


def test_function_becomes_active_and_get_function_describes_it(lambda_client):
    name = unique_name("active")
    zip_bytes = python_zip()
    create_function(lambda_client, name, zip_bytes=zip_bytes, wait=False,
                    Description="a probe", Environment={"Variables": {"ALPHA": "1"}})
    waiter = lambda_client.get_waiter("function_active_v2")
    waiter.wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    got = lambda_client.get_function(FunctionName=name)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    conf = got["Configuration"]
    assert conf["State"] == "Active"
    assert conf["LastUpdateStatus"] == "Successful"
    assert conf["FunctionName"] == name
    assert conf["FunctionArn"] == arn(name)
    assert conf["CodeSha256"] == code_sha256(zip_bytes)
    assert conf["CodeSize"] == len(zip_bytes)
    assert conf["Description"] == "a probe"
    assert conf["Environment"] == {"Variables": {"ALPHA": "1"}}
    assert conf["Timeout"] == 3 and conf["MemorySize"] == 128
    assert UUID.match(conf["RevisionId"])
    assert LAST_MODIFIED.match(conf["LastModified"])
    assert got["Code"]["RepositoryType"] == "S3"
    assert isinstance(got["Code"]["Location"], str) and got["Code"]["Location"]

    only_conf = lambda_client.get_function_configuration(FunctionName=name)
    assert without_metadata(only_conf) == conf


def test_code_location_downloads_the_zip_only_while_signed(lambda_client, python_fn):
    url = lambda_client.get_function(FunctionName=python_fn)["Code"]["Location"]
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200 and resp.read()[:2] == b"PK"
    bare = url.split("?", 1)[0]
    tampered = url[:-1] + ("1" if url[-1] == "0" else "0")
    for refused in (bare, tampered):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(refused, timeout=10)
        assert e.value.code == 403, refused


def test_get_function_accepts_arn_partial_arn_and_latest_qualifier(lambda_client, python_fn):
    forms = [
        {"FunctionName": python_fn},
        {"FunctionName": arn(python_fn)},
        {"FunctionName": f"{DEFAULT_ACCOUNT}:function:{python_fn}"},
        {"FunctionName": f"{python_fn}:$LATEST"},
        {"FunctionName": f"{arn(python_fn)}:$LATEST"},
        {"FunctionName": python_fn, "Qualifier": "$LATEST"},
    ]
    for form in forms:
        conf = lambda_client.get_function(**form)["Configuration"]
        assert conf["FunctionName"] == python_fn, form
        assert conf["Version"] == "$LATEST", form


def test_list_functions_paginates_with_marker_and_max_items(make_client):
    # A fresh account sees exactly the functions it created, whatever else the suite made.
    client = make_client(account=random_account())
    names = sorted(unique_name("page") for _ in range(5))
    for name in names:
        create_function(client, name, wait=False)

    everything = client.list_functions()
    assert sorted(f["FunctionName"] for f in everything["Functions"]) == names
    assert "NextMarker" not in everything

    seen, marker, pages = [], None, 0
    while True:
        kwargs = {"MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = client.list_functions(**kwargs)
        pages += 1
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
        assert pages < 10, "NextMarker never ends"
    assert pages == 3
    assert sorted(seen) == names and len(seen) == len(set(seen))

    paginated = [
        f["FunctionName"]
        for page in client.get_paginator("list_functions").paginate(
            PaginationConfig={"PageSize": 2})
        for f in page["Functions"]
    ]
    assert sorted(paginated) == names


def test_list_functions_entries_describe_latest(make_client):
    account = random_account()
    client = make_client(account=account)
    name = unique_name("listed")
    zip_bytes = python_zip()
    create_function(client, name, zip_bytes=zip_bytes)
    conf = client.get_function_configuration(FunctionName=name)
    (entry,) = client.list_functions()["Functions"]
    assert entry["FunctionName"] == name
    assert entry["FunctionArn"] == arn(name, account=account)
    assert entry["Version"] == "$LATEST"
    assert entry["CodeSha256"] == code_sha256(zip_bytes)
    assert entry["RevisionId"] == conf["RevisionId"]
    assert entry["Runtime"] == "python3.11"
    assert entry["MemorySize"] == 128 and entry["Timeout"] == 3


def test_update_function_code_runs_the_new_code(lambda_client):
    name = unique_name("code")
    original = python_zip()
    create_function(lambda_client, name, zip_bytes=original)
    before = lambda_client.get_function_configuration(FunctionName=name)
    _, payload = invoke_json(lambda_client, name, {"hello": "v1"})
    assert payload == {"hello": "v1"}

    new_zip = v2_zip()
    resp = lambda_client.update_function_code(FunctionName=name, ZipFile=new_zip)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["CodeSha256"] == code_sha256(new_zip)
    assert resp["CodeSize"] == len(new_zip)
    assert resp["RevisionId"] != before["RevisionId"]
    assert UUID.match(resp["RevisionId"])
    assert LAST_MODIFIED.match(resp["LastModified"])

    lambda_client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    conf = lambda_client.get_function(FunctionName=name)["Configuration"]
    assert conf["CodeSha256"] == code_sha256(new_zip)
    assert conf["LastUpdateStatus"] == "Successful"
    _, payload = invoke_json(lambda_client, name, {"hello": "v2"})
    assert payload == {"version": 2}


def test_update_responses_report_the_update_in_progress_as_aws_does(lambda_client):
    name = unique_name("inprogress")
    create_function(lambda_client, name)
    resp = lambda_client.update_function_configuration(FunctionName=name, Description="x")
    assert resp["State"] == "Active"
    assert resp["LastUpdateStatus"] == "InProgress"
    assert resp["LastUpdateStatusReason"] == "The function is being created."
    assert resp["LastUpdateStatusReasonCode"] == "Creating"
    wait_active(lambda_client, name)
    conf = lambda_client.get_function_configuration(FunctionName=name)
    assert conf["LastUpdateStatus"] == "Successful"


def test_the_update_stays_in_progress_for_the_next_calls_as_on_aws(lambda_client):
    # AWS's update takes a second or more: a GetFunction right after it still says InProgress
    # (LocalStack's test_publish_with_update / test_lambda_code_location_zipfile recorded it), and
    # a second update meanwhile is refused (test_lambda_concurrent_config_updates).
    name = unique_name("inprogress-get")
    create_function(lambda_client, name)
    lambda_client.update_function_code(FunctionName=name, ZipFile=python_zip())
    conf = lambda_client.get_function(FunctionName=name)["Configuration"]
    assert conf["LastUpdateStatus"] == "InProgress"
    assert conf["LastUpdateStatusReason"] == "The function is being created."
    assert conf["LastUpdateStatusReasonCode"] == "Creating"
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.update_function_configuration(FunctionName=name, Description="again")
    wait_active(lambda_client, name)
    # The window is Flint's --update-settle-ms (500 ms by default): long enough for the calls
    # of a client that goes through a proxy or a slow machine to land inside it.
    started = time.monotonic()
    lambda_client.update_function_configuration(FunctionName=name, Description="later")
    wait_active(lambda_client, name)
    assert time.monotonic() - started >= 0.3


def test_update_function_configuration_applies_to_the_next_invoke(lambda_client):
    name = unique_name("config")
    create_function(lambda_client, name)
    before = lambda_client.get_function_configuration(FunctionName=name)

    resp = lambda_client.update_function_configuration(
        FunctionName=name, Timeout=10, MemorySize=256, Description="updated",
        Environment={"Variables": {"GREETING": "hi", "OTHER": "2"}})
    assert resp["Timeout"] == 10
    assert resp["MemorySize"] == 256
    assert resp["Description"] == "updated"
    assert resp["Environment"] == {"Variables": {"GREETING": "hi", "OTHER": "2"}}
    assert resp["RevisionId"] != before["RevisionId"]
    assert resp["CodeSha256"] == before["CodeSha256"]

    wait_active(lambda_client, name)
    conf = lambda_client.get_function_configuration(FunctionName=name)
    assert (conf["Timeout"], conf["MemorySize"], conf["Description"]) == (10, 256, "updated")

    _, env = invoke_json(lambda_client, name, {"action": "env"})
    assert env["GREETING"] == "hi" and env["OTHER"] == "2"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    _, ctx = invoke_json(lambda_client, name, {"action": "context"})
    assert str(ctx["memory_limit_in_mb"]) == "256"
    assert 3000 < ctx["remaining_ms"] <= 10000


def test_update_function_configuration_changes_the_handler(lambda_client):
    name = unique_name("handler")
    zip_bytes = make_zip({
        "index.py": fixture_text("python/index.py"),
        "other.py": "def main(event, context):\n    return 'other handler'\n",
    })
    create_function(lambda_client, name, zip_bytes=zip_bytes)
    _, payload = invoke_json(lambda_client, name, {"x": 1})
    assert payload == {"x": 1}
    lambda_client.update_function_configuration(FunctionName=name, Handler="other.main")
    wait_active(lambda_client, name)
    _, payload = invoke_json(lambda_client, name, {"x": 1})
    assert payload == "other handler"


def test_revision_id_changes_on_every_change(lambda_client):
    name = unique_name("revisions")
    create_function(lambda_client, name)
    seen = [lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]]

    seen.append(lambda_client.update_function_configuration(
        FunctionName=name, Description="one")["RevisionId"])
    wait_active(lambda_client, name)
    seen.append(lambda_client.get_function_configuration(FunctionName=name)["RevisionId"])
    seen.append(lambda_client.update_function_code(FunctionName=name, ZipFile=v2_zip())["RevisionId"])
    wait_active(lambda_client, name)
    seen.append(lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"KEY": "V"}})["RevisionId"])
    wait_active(lambda_client, name)

    assert all(UUID.match(r) for r in seen), seen
    # Each write produces a new id (the read in between may or may not, as on AWS).
    assert seen[1] != seen[0]
    assert seen[3] != seen[2]
    assert seen[4] != seen[3]
    assert len({seen[0], seen[1], seen[3], seen[4]}) == 4


def test_stale_revision_id_is_refused_with_412(lambda_client):
    name = unique_name("precondition")
    create_function(lambda_client, name)
    first = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]

    second = lambda_client.update_function_configuration(
        FunctionName=name, Description="guarded", RevisionId=first)["RevisionId"]
    assert second != first
    wait_active(lambda_client, name)
    current = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]

    with pytest.raises(lambda_client.exceptions.PreconditionFailedException) as e:
        lambda_client.update_function_configuration(
            FunctionName=name, Description="stale", RevisionId=first)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        412, "PreconditionFailedException", PRECONDITION_MESSAGE)
    assert err["type"] == "User"

    with pytest.raises(lambda_client.exceptions.PreconditionFailedException) as e:
        lambda_client.update_function_code(FunctionName=name, ZipFile=v2_zip(), RevisionId=first)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        412, "PreconditionFailedException", PRECONDITION_MESSAGE)

    # Nothing changed by the refused writes.
    conf = lambda_client.get_function_configuration(FunctionName=name)
    assert conf["Description"] == "guarded"
    assert conf["RevisionId"] == current

    ok = lambda_client.update_function_configuration(
        FunctionName=name, Description="fresh", RevisionId=current)
    assert ok["Description"] == "fresh"


def test_delete_function_removes_it(lambda_client):
    name = unique_name("delete")
    create_function(lambda_client, name)
    resp = lambda_client.delete_function(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204

    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.get_function(FunctionName=name)
    err = client_error(e)
    assert (err["status"], err["message"]) == (404, not_found_message(name))

    listed = [f["FunctionName"] for p in lambda_client.get_paginator("list_functions").paginate()
              for f in p["Functions"]]
    assert name not in listed

    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as e:
        lambda_client.delete_function(FunctionName=name)
    assert client_error(e)["message"] == not_found_message(name)


def test_delete_by_arn_then_recreate_with_the_same_name(lambda_client):
    name = unique_name("recreate")
    create_function(lambda_client, name)
    lambda_client.delete_function(FunctionName=arn(name))
    resp = create_function(lambda_client, name, zip_bytes=v2_zip())
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    _, payload = invoke_json(lambda_client, name, {})
    assert payload == {"version": 2}


def test_last_modified_moves_forward_on_update(lambda_client):
    name = unique_name("lastmod")
    create_function(lambda_client, name)
    before = lambda_client.get_function_configuration(FunctionName=name)["LastModified"]
    time.sleep(0.01)
    after = lambda_client.update_function_configuration(
        FunctionName=name, Description="later")["LastModified"]
    assert LAST_MODIFIED.match(after)
    assert after >= before
