"""Layers as AWS Lambda answers them: PublishLayerVersion / GetLayerVersion(+ByArn) /
ListLayers (filters) / ListLayerVersions (newest first) / DeleteLayerVersion, layer-version
policies, functions referencing layers (`Layers[].Arn/CodeSize`, the errors for missing layers,
duplicate layers and more than five), and that a function really sees its layers' files under
/opt, later layers overriding earlier ones. Messages are those recorded against real AWS."""

import json
import re
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    code_sha256,
    create_function,
    invoke_json,
    make_zip,
    unique_name,
    wait_active,
)

CREATED_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LAYER_ARN_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
    r"layer:[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)")


def layer_arn(name, version=None, region=REGION):
    base = f"arn:aws:lambda:{region}:{DEFAULT_ACCOUNT}:layer:{name}"
    return f"{base}:{version}" if version is not None else base


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def lib_layer(value):
    """A python layer: `python/shared.py` (VALUE), `python/lib_<value>.py` and a data file."""
    return make_zip({
        "python/shared.py": f"VALUE = {value!r}\n",
        f"python/lib_{value.lower()}.py": f"def hello():\n    return 'hello from {value}'\n",
        "data/which.txt": value,
    })


LAYER_PROBE = make_zip({"index.py": (
    "import os\n"
    "def handler(event, context):\n"
    "    import shared\n"
    "    out = {'shared': shared.VALUE, 'data': open('/opt/data/which.txt').read(),\n"
    "           'libs': {}}\n"
    "    for name in event.get('libs', []):\n"
    "        try:\n"
    "            out['libs'][name] = __import__(name).hello()\n"
    "        except ImportError as e:\n"
    "            out['libs'][name] = 'missing: %s' % e\n"
    "    try:\n"
    "        open('/opt/written', 'w').write('x')\n"
    "        out['opt_writable'] = True\n"
    "    except OSError:\n"
    "        out['opt_writable'] = False\n"
    "    return out\n")})


@pytest.fixture(scope="module")
def layer(lambda_client):
    """A layer with two versions (A then B), both for python3.11/x86_64."""
    name = unique_name("layer")
    v1 = lambda_client.publish_layer_version(
        LayerName=name, Description="first", Content={"ZipFile": lib_layer("A")},
        CompatibleRuntimes=["python3.11", "python3.12"], CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT")
    v2 = lambda_client.publish_layer_version(
        LayerName=name, Description="second", Content={"ZipFile": lib_layer("B")},
        CompatibleRuntimes=["python3.11"], CompatibleArchitectures=["x86_64"])
    return {"name": name, "v1": v1, "v2": v2}


@pytest.fixture(scope="module")
def other_layer(lambda_client):
    name = unique_name("other")
    v1 = lambda_client.publish_layer_version(
        LayerName=name, Content={"ZipFile": lib_layer("C")},
        CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])
    return {"name": name, "v1": v1}


# --------------------------------------------------------------------------------------------
# Publish / Get / List / Delete
# --------------------------------------------------------------------------------------------

def test_publish_layer_version_returns_201_and_the_version(layer):
    v1 = layer["v1"]
    name = layer["name"]
    zip_bytes = lib_layer("A")
    assert status(v1) == 201
    assert v1["LayerArn"] == layer_arn(name)
    assert v1["LayerVersionArn"] == layer_arn(name, 1)
    assert v1["Version"] == 1
    assert v1["Description"] == "first"
    assert v1["LicenseInfo"] == "MIT"
    assert v1["CompatibleRuntimes"] == ["python3.11", "python3.12"]
    assert v1["CompatibleArchitectures"] == ["x86_64"]
    assert v1["Content"]["CodeSha256"] == code_sha256(zip_bytes)
    assert v1["Content"]["CodeSize"] == len(zip_bytes)
    assert isinstance(v1["Content"]["Location"], str) and v1["Content"]["Location"]
    assert CREATED_DATE.match(v1["CreatedDate"]), v1["CreatedDate"]
    v2 = layer["v2"]
    assert (v2["Version"], v2["LayerVersionArn"]) == (2, layer_arn(name, 2))
    assert "LicenseInfo" not in v2


def test_get_layer_version_and_by_arn(lambda_client, layer):
    name = layer["name"]
    got = lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    assert status(got) == 200
    expected = {k: v for k, v in layer["v1"].items() if k != "ResponseMetadata"}
    actual = {k: v for k, v in got.items() if k != "ResponseMetadata"}
    expected["Content"] = {k: v for k, v in expected["Content"].items() if k != "Location"}
    actual_content = dict(actual["Content"])
    actual_content.pop("Location")
    actual["Content"] = actual_content
    assert actual == expected
    by_arn = lambda_client.get_layer_version_by_arn(Arn=layer_arn(name, 2))
    assert by_arn["Version"] == 2 and by_arn["Description"] == "second"
    assert by_arn["Content"]["CodeSha256"] == code_sha256(lib_layer("B"))
    by_layer_arn = lambda_client.get_layer_version(LayerName=layer_arn(name), VersionNumber=2)
    assert by_layer_arn["LayerVersionArn"] == layer_arn(name, 2)


def test_layer_content_location_serves_the_zip(lambda_client, layer):
    got = lambda_client.get_layer_version(LayerName=layer["name"], VersionNumber=2)
    with urllib.request.urlopen(got["Content"]["Location"], timeout=10) as resp:
        assert resp.read() == lib_layer("B")


def fetch(url):
    """(status, body) of a plain GET, as a browser or curl would send it."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def tampered(url):
    """The URL with the last hex digit of its signature changed."""
    return url[:-1] + ("1" if url[-1] == "0" else "0")


def test_layer_content_is_served_only_through_its_signed_url(lambda_client, layer, python_fn):
    url = lambda_client.get_layer_version(LayerName=layer["name"], VersionNumber=2)["Content"]["Location"]
    bare = url.split("?", 1)[0]
    code, body = fetch(bare)
    assert code == 403 and b"<Code>AccessDenied</Code>" in body, (code, body)
    code, body = fetch(tampered(url))
    assert code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, (code, body)
    # A function's zip is not a layer's: its URL does not open the layers' path.
    function_url = lambda_client.get_function(FunctionName=python_fn)["Code"]["Location"]
    code, _ = fetch(function_url.replace("/_flint/code/", "/_flint/layers/"))
    assert code == 403
    assert fetch(url) == (200, lib_layer("B"))


def test_list_layer_versions_newest_first(lambda_client, layer):
    name = layer["name"]
    resp = lambda_client.list_layer_versions(LayerName=name)
    versions = resp["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    assert [v["LayerVersionArn"] for v in versions] == [layer_arn(name, 2), layer_arn(name, 1)]
    assert versions[1]["Description"] == "first"
    assert versions[1]["LicenseInfo"] == "MIT"
    assert versions[1]["CompatibleRuntimes"] == ["python3.11", "python3.12"]
    assert "Content" not in versions[0]
    assert CREATED_DATE.match(versions[0]["CreatedDate"])
    only_312 = lambda_client.list_layer_versions(LayerName=name,
                                                 CompatibleRuntime="python3.12")["LayerVersions"]
    assert [v["Version"] for v in only_312] == [1]
    page = lambda_client.list_layer_versions(LayerName=name, MaxItems=1)
    assert [v["Version"] for v in page["LayerVersions"]] == [2] and page.get("NextMarker")
    rest = lambda_client.list_layer_versions(LayerName=name, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1]


def test_list_layer_versions_of_unknown_layer_is_empty(lambda_client):
    resp = lambda_client.list_layer_versions(LayerName=unique_name("nolayer"))
    assert status(resp) == 200
    assert resp["LayerVersions"] == []


def test_list_layers_shows_latest_matching_version_and_filters(lambda_client, layer,
                                                               other_layer):
    layers = {entry["LayerName"]: entry for entry in lambda_client.list_layers()["Layers"]}
    assert layer["name"] in layers and other_layer["name"] in layers
    entry = layers[layer["name"]]
    assert entry["LayerArn"] == layer_arn(layer["name"])
    latest = entry["LatestMatchingVersion"]
    assert latest["Version"] == 2
    assert latest["LayerVersionArn"] == layer_arn(layer["name"], 2)
    assert latest["Description"] == "second"
    assert CREATED_DATE.match(latest["CreatedDate"])

    by_runtime = {e["LayerName"]: e for e in lambda_client.list_layers(
        CompatibleRuntime="python3.12")["Layers"]}
    assert by_runtime[layer["name"]]["LatestMatchingVersion"]["Version"] == 1
    assert other_layer["name"] not in by_runtime

    by_arch = {e["LayerName"] for e in lambda_client.list_layers(
        CompatibleArchitecture="arm64")["Layers"]}
    assert other_layer["name"] in by_arch and layer["name"] not in by_arch

    both = {e["LayerName"] for e in lambda_client.list_layers(
        CompatibleRuntime="nodejs20.x", CompatibleArchitecture="arm64")["Layers"]}
    assert other_layer["name"] in both and layer["name"] not in both


def test_list_layers_with_invalid_filters_is_a_validation_error(raw_client):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.list_layers(CompatibleRuntime="runtimedoesnotexist")
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "ValidationException")
    assert err["message"].startswith(
        "1 validation error detected: Value 'runtimedoesnotexist' at 'compatibleRuntime' failed "
        "to satisfy constraint: Member must satisfy enum value set: [")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.list_layers(CompatibleArchitecture="archdoesnotexist")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "ValidationException",
        "1 validation error detected: Value 'archdoesnotexist' at 'compatibleArchitecture' "
        "failed to satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]")


def test_publish_with_invalid_runtime_and_architecture(raw_client):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.publish_layer_version(
            LayerName=unique_name("bad"), Content={"ZipFile": lib_layer("X")},
            CompatibleRuntimes=["invalidruntime"], CompatibleArchitectures=["invalidarch"])
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "ValidationException")
    assert err["message"].startswith(
        "2 validation errors detected: Value '[invalidruntime]' at 'compatibleRuntimes' failed "
        "to satisfy constraint: Member must satisfy enum value set: [")
    assert err["message"].endswith(
        "Value '[invalidarch]' at 'compatibleArchitectures' failed to satisfy constraint: Member "
        "must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member "
        "must not be null]")


@pytest.mark.parametrize("version, expected", [
    (-1, (400, "InvalidParameterValueException", "Layer Version Cannot be less than 1")),
    (0, (400, "InvalidParameterValueException", "Layer Version Cannot be less than 1")),
    (9, (404, "ResourceNotFoundException", "The resource you requested does not exist.")),
])
def test_get_layer_version_errors(raw_client, layer, version, expected):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.get_layer_version(LayerName=layer["name"], VersionNumber=version)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected


def test_get_unknown_layer_and_malformed_arn(raw_client, layer):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.get_layer_version(LayerName=unique_name("nolayer"), VersionNumber=1)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", "The resource you requested does not exist.")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.get_layer_version_by_arn(Arn=layer_arn(layer["name"], 9))
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", "The resource you requested does not exist.")
    unversioned = layer_arn(layer["name"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.get_layer_version_by_arn(Arn=unversioned)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "ValidationException",
        f"1 validation error detected: Value '{unversioned}' at 'arn' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {LAYER_ARN_PATTERN}")


def test_delete_layer_version_lifecycle(lambda_client, raw_client):
    name = unique_name("dellayer")
    for value in ("A", "B"):
        lambda_client.publish_layer_version(LayerName=name, Content={"ZipFile": lib_layer(value)})
    assert status(lambda_client.delete_layer_version(LayerName=name, VersionNumber=1)) == 204
    assert [v["Version"] for v in lambda_client.list_layer_versions(
        LayerName=name)["LayerVersions"]] == [2]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    assert client_error(e)["status"] == 404
    # Idempotent, as on AWS; also for unknown layers and versions.
    assert status(lambda_client.delete_layer_version(LayerName=name, VersionNumber=1)) == 204
    assert status(lambda_client.delete_layer_version(LayerName=name, VersionNumber=7)) == 204
    assert status(lambda_client.delete_layer_version(
        LayerName=unique_name("nolayer"), VersionNumber=1)) == 204
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.delete_layer_version(LayerName=name, VersionNumber=0)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException", "Layer Version Cannot be less than 1")
    assert status(lambda_client.delete_layer_version(LayerName=name, VersionNumber=2)) == 204
    assert lambda_client.list_layer_versions(LayerName=name)["LayerVersions"] == []
    assert name not in {e["LayerName"] for e in lambda_client.list_layers()["Layers"]}
    # Numbering continues after every version was deleted.
    again = lambda_client.publish_layer_version(LayerName=name,
                                                Content={"ZipFile": lib_layer("C")})
    assert again["Version"] == 3


# --------------------------------------------------------------------------------------------
# Layer version policies
# --------------------------------------------------------------------------------------------

LAYER_PRECONDITION = ("The Revision Id provided does not match the latest Revision Id. "
                      "Call the GetLayerPolicy API to retrieve the latest Revision Id")


def test_layer_version_policy_lifecycle(lambda_client, layer):
    name = unique_name("polayer")
    lambda_client.publish_layer_version(LayerName=name, Content={"ZipFile": lib_layer("P")})
    resource = layer_arn(name, 1)

    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", "No policy is associated with the given resource.")

    s1 = lambda_client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="s1", Action="lambda:GetLayerVersion",
        Principal="*")
    assert status(s1) == 201
    assert UUID.match(s1["RevisionId"])
    assert json.loads(s1["Statement"]) == {
        "Sid": "s1", "Effect": "Allow", "Principal": "*", "Action": "lambda:GetLayerVersion",
        "Resource": resource}

    policy = lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert policy["RevisionId"] == s1["RevisionId"]
    assert json.loads(policy["Policy"]) == {
        "Version": "2012-10-17", "Id": "default",
        "Statement": [json.loads(s1["Statement"])]}

    s2 = lambda_client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="s2", Action="lambda:GetLayerVersion",
        Principal=DEFAULT_ACCOUNT, RevisionId=s1["RevisionId"])
    assert s2["RevisionId"] != s1["RevisionId"]
    statements = json.loads(lambda_client.get_layer_version_policy(
        LayerName=name, VersionNumber=1)["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["s1", "s2"]
    assert statements[1]["Principal"] == {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"}

    removed = lambda_client.remove_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="s2")
    assert status(removed) == 204
    after = lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert [s["Sid"] for s in json.loads(after["Policy"])["Statement"]] == ["s1"]
    assert after["RevisionId"] not in (s1["RevisionId"], s2["RevisionId"])


def test_layer_version_policy_errors(raw_client):
    name = unique_name("polerr")
    raw_client.publish_layer_version(LayerName=name, Content={"ZipFile": lib_layer("E")})
    raw_client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="s1", Action="lambda:GetLayerVersion",
        Principal="*")

    def expect(call, expected, **kwargs):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(**kwargs)
        err = client_error(e)
        assert (err["status"], err["code"], err["message"]) == expected, kwargs

    add = raw_client.add_layer_version_permission
    expect(add, (400, "ValidationException",
                 "1 validation error detected: Value '*' at 'action' failed to satisfy "
                 "constraint: Member must satisfy regular expression pattern: "
                 "lambda:GetLayerVersion"),
           LayerName=name, VersionNumber=1, StatementId="s2", Action="*", Principal="*")
    expect(add, (409, "ResourceConflictException",
                 "The statement id (s1) provided already exists. Please provide a new statement "
                 "id, or remove the existing statement."),
           LayerName=name, VersionNumber=1, StatementId="s1", Action="lambda:GetLayerVersion",
           Principal="*")
    expect(add, (412, "PreconditionFailedException", LAYER_PRECONDITION),
           LayerName=name, VersionNumber=1, StatementId="s2", Action="lambda:GetLayerVersion",
           Principal="*", RevisionId="wrong")
    missing_layer = f"{name}-doesnotexist"
    for call, extra in [(add, {"StatementId": "s3", "Action": "lambda:GetLayerVersion",
                               "Principal": "*"}),
                        (raw_client.get_layer_version_policy, {}),
                        (raw_client.remove_layer_version_permission, {"StatementId": "s1"})]:
        expect(call, (404, "ResourceNotFoundException",
                      f"Layer version {layer_arn(missing_layer, 1)} does not exist."),
               LayerName=missing_layer, VersionNumber=1, **extra)
        expect(call, (404, "ResourceNotFoundException",
                      f"Layer version {layer_arn(name, 2)} does not exist."),
               LayerName=name, VersionNumber=2, **extra)
    expect(raw_client.remove_layer_version_permission,
           (404, "ResourceNotFoundException",
            "Statement doesnotexist is not found in resource policy."),
           LayerName=name, VersionNumber=1, StatementId="doesnotexist")
    expect(raw_client.remove_layer_version_permission,
           (412, "PreconditionFailedException", LAYER_PRECONDITION),
           LayerName=name, VersionNumber=1, StatementId="s1", RevisionId="wrong")


# --------------------------------------------------------------------------------------------
# Functions with layers
# --------------------------------------------------------------------------------------------

def test_function_with_layers_shows_arn_and_code_size(lambda_client, layer):
    name = unique_name("withlayer")
    resp = create_function(lambda_client, name, zip_bytes=LAYER_PROBE,
                           Layers=[layer_arn(layer["name"], 1)])
    assert resp["Layers"] == [{"Arn": layer_arn(layer["name"], 1),
                               "CodeSize": len(lib_layer("A"))}]
    conf = lambda_client.get_function_configuration(FunctionName=name)
    assert conf["Layers"] == resp["Layers"]
    updated = lambda_client.update_function_configuration(
        FunctionName=name, Layers=[layer_arn(layer["name"], 2)])
    assert updated["Layers"] == [{"Arn": layer_arn(layer["name"], 2),
                                  "CodeSize": len(lib_layer("B"))}]
    wait_active(lambda_client, name)
    cleared = lambda_client.update_function_configuration(FunctionName=name, Layers=[])
    assert "Layers" not in cleared or cleared["Layers"] == []
    wait_active(lambda_client, name)


def test_function_keeps_a_deleted_layer_version(lambda_client):
    layer_name = unique_name("keep")
    lambda_client.publish_layer_version(LayerName=layer_name, Content={"ZipFile": lib_layer("K")},
                                        CompatibleRuntimes=["python3.11"])
    name = unique_name("keeper")
    create_function(lambda_client, name, zip_bytes=LAYER_PROBE, Layers=[layer_arn(layer_name, 1)])
    lambda_client.delete_layer_version(LayerName=layer_name, VersionNumber=1)
    conf = lambda_client.get_function_configuration(FunctionName=name)
    assert conf["Layers"] == [{"Arn": layer_arn(layer_name, 1), "CodeSize": len(lib_layer("K"))}]
    # The function still runs with the layer's content (AWS keeps a copy for its users).
    resp, payload = invoke_json(lambda_client, name, {"libs": ["lib_k"]})
    assert resp["StatusCode"] == 200, payload
    assert payload["libs"] == {"lib_k": "hello from K"}


def test_function_sees_layer_files_under_opt_and_later_layers_win(lambda_client, layer,
                                                                   other_layer):
    name = unique_name("optview")
    create_function(lambda_client, name, zip_bytes=LAYER_PROBE,
                    Layers=[layer_arn(layer["name"], 1), layer_arn(other_layer["name"], 1)])
    resp, payload = invoke_json(lambda_client, name, {"libs": ["lib_a", "lib_c", "lib_b"]})
    assert resp["StatusCode"] == 200, payload
    # Both layers are merged under /opt; `python/` is on sys.path; the later layer (C) wins.
    assert payload["shared"] == "C"
    assert payload["data"] == "C"
    assert payload["libs"]["lib_a"] == "hello from A"
    assert payload["libs"]["lib_c"] == "hello from C"
    assert payload["libs"]["lib_b"].startswith("missing")
    assert payload["opt_writable"] is False

    # Reversing the order reverses the winner.
    lambda_client.update_function_configuration(
        FunctionName=name,
        Layers=[layer_arn(other_layer["name"], 1), layer_arn(layer["name"], 2)])
    wait_active(lambda_client, name)
    _, payload = invoke_json(lambda_client, name, {"libs": ["lib_a", "lib_b", "lib_c"]})
    assert (payload["shared"], payload["data"]) == ("B", "B")
    assert payload["libs"]["lib_b"] == "hello from B"
    assert payload["libs"]["lib_c"] == "hello from C"
    assert payload["libs"]["lib_a"].startswith("missing")


def test_function_code_shadows_layer_modules(lambda_client, layer):
    """The function's own code lives in /var/task, the layer in /opt: a module of the same name
    in the function wins, as /var/task comes first on sys.path."""
    name = unique_name("shadow")
    zip_bytes = make_zip({
        "index.py": "import shared\ndef handler(e, c):\n    return shared.VALUE\n",
        "shared.py": "VALUE = 'task'\n",
    })
    create_function(lambda_client, name, zip_bytes=zip_bytes, Layers=[layer_arn(layer["name"], 1)])
    _, payload = invoke_json(lambda_client, name, {})
    assert payload == "task"


def test_missing_layer_version_is_rejected_at_create_and_update(raw_client, layer):
    missing = layer_arn("doesnotexist", 1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_function(raw_client, unique_name("nolayer"), wait=False, Layers=[missing])
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException", f"Layer version {missing} does not exist.")

    name = unique_name("laterlayer")
    create_function(raw_client, name)
    missing_version = layer_arn(layer["name"], 9)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.update_function_configuration(FunctionName=name, Layers=[missing_version])
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException", f"Layer version {missing_version} does not exist.")
    assert "Layers" not in raw_client.get_function_configuration(FunctionName=name)


def test_two_versions_of_one_layer_are_rejected(raw_client, layer):
    name = unique_name("twolayer")
    create_function(raw_client, name)
    a, b = layer_arn(layer["name"], 1), layer_arn(layer["name"], 2)
    for layers, (first, second) in [([a, b], (a, b)), ([a, a], (a, a))]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            raw_client.update_function_configuration(FunctionName=name, Layers=layers)
        err = client_error(e)
        assert (err["status"], err["code"], err["message"]) == (
            400, "InvalidParameterValueException",
            "Two different versions of the same layer are not allowed to be referenced in the "
            f"same function. {first} and {second} are versions of the same layer.")


def test_more_than_five_layers_is_rejected(raw_client):
    arns = []
    for _ in range(6):
        layer_name = unique_name("many")
        raw_client.publish_layer_version(LayerName=layer_name,
                                         Content={"ZipFile": lib_layer("M")})
        arns.append(layer_arn(layer_name, 1))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_function(raw_client, unique_name("sixlayers"), wait=False, Layers=arns)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException", "Cannot reference more than 5 layers.")
    name = unique_name("fivelayers")
    resp = create_function(raw_client, name, Layers=arns[:5])
    assert [entry["Arn"] for entry in resp["Layers"]] == arns[:5]


def test_layer_arn_without_version_is_a_validation_error(raw_client, layer):
    unversioned = layer_arn(layer["name"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_function(raw_client, unique_name("unversioned"), wait=False, Layers=[unversioned])
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "ValidationException",
        f"1 validation error detected: Value '[{unversioned}]' at 'layers' failed to satisfy "
        "constraint: Member must satisfy constraint: [Member must have length less than or "
        "equal to 2048, Member must have length greater than or equal to 1, Member must satisfy "
        f"regular expression pattern: {LAYER_ARN_PATTERN}, Member must not be null]")


def test_layer_in_another_region_is_rejected(raw_client, make_client, layer):
    other_region = make_client(region="eu-west-1", validate=False)
    layer_name = unique_name("elsewhere")
    published = other_region.publish_layer_version(LayerName=layer_name,
                                                   Content={"ZipFile": lib_layer("R")})
    assert published["LayerVersionArn"] == layer_arn(layer_name, 1, region="eu-west-1")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_function(raw_client, unique_name("xregion"), wait=False,
                        Layers=[published["LayerVersionArn"]])
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException",
        f"Layers are not in the same region as the function. Layers are expected to be in "
        f"region {REGION}.")
    # Layers are regional: us-east-1 does not list it.
    assert layer_name not in {e["LayerName"] for e in raw_client.list_layers()["Layers"]}
