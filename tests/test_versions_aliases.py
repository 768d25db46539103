"""Versions and aliases as AWS Lambda answers them: PublishVersion (numbering, idempotence on an
unchanged $LATEST, CodeSha256/RevisionId preconditions), ListVersionsByFunction, qualified
Get/Delete, immutability of published versions when they run, aliases (CRUD, routing-config
validation, RevisionId guards, weighted routing at invoke), and what DeleteFunction cascades to.
Expected messages are those recorded against real AWS (test_lambda_api.snapshot.json)."""

import collections
import re

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

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PRECONDITION = ("The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def code(tag):
    """A handler that says which code it is and which version ran it."""
    return make_zip({"index.py": (
        "import os\n"
        "def handler(event, context):\n"
        f"    return {{'code': {tag!r}, 'version': context.function_version,\n"
        "            'arn': context.invoked_function_arn, 'env': os.environ.get('STAGE')}\n")})


def body(resp):
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def update_code(client, name, zip_bytes):
    resp = client.update_function_code(FunctionName=name, ZipFile=zip_bytes)
    wait_active(client, name)
    return resp


def update_config(client, name, **kwargs):
    resp = client.update_function_configuration(FunctionName=name, **kwargs)
    wait_active(client, name)
    return resp


@pytest.fixture(scope="module")
def versioned(lambda_client):
    """A function with versions 1 (code A, STAGE=one) and 2 (code B, STAGE=two); $LATEST has code
    C. Alias `live` → 1, alias `canary` → 1 with 50% on 2. Tests must not change it."""
    name = unique_name("versioned")
    create_function(lambda_client, name, zip_bytes=code("A"),
                    Environment={"Variables": {"STAGE": "one"}})
    v1 = lambda_client.publish_version(FunctionName=name, Description="first")
    update_code(lambda_client, name, code("B"))
    update_config(lambda_client, name, Environment={"Variables": {"STAGE": "two"}})
    v2 = lambda_client.publish_version(FunctionName=name)
    update_code(lambda_client, name, code("C"))
    live = lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                                      Description="the live one")
    canary = lambda_client.create_alias(
        FunctionName=name, Name="canary", FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    return {"name": name, "v1": v1, "v2": v2, "live": live, "canary": canary}


# --------------------------------------------------------------------------------------------
# PublishVersion
# --------------------------------------------------------------------------------------------

def test_publish_version_returns_201_with_the_version_configuration(lambda_client, versioned):
    v1 = versioned["v1"]
    assert status(v1) == 201
    assert v1["Version"] == "1"
    assert v1["FunctionArn"] == arn(versioned["name"], "1")
    assert v1["FunctionName"] == versioned["name"]
    assert v1["Description"] == "first"
    assert v1["CodeSha256"] == code_sha256(code("A"))
    assert v1["Environment"] == {"Variables": {"STAGE": "one"}}
    assert v1["State"] == "Active"
    assert v1["LastUpdateStatus"] == "Successful"
    assert UUID.match(v1["RevisionId"])
    v2 = versioned["v2"]
    assert (v2["Version"], v2["Description"]) == ("2", "")
    assert v2["CodeSha256"] == code_sha256(code("B"))


def test_publish_on_unchanged_latest_returns_the_existing_version(lambda_client):
    name = unique_name("republish")
    create_function(lambda_client, name)
    first = lambda_client.publish_version(FunctionName=name)
    again = lambda_client.publish_version(FunctionName=name)
    assert status(again) == 201
    assert again["Version"] == first["Version"] == "1"
    assert again["RevisionId"] == first["RevisionId"]
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    # A configuration change is a change too: the next publish makes version 2.
    update_config(lambda_client, name, Description="changed")
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"


def test_publish_on_create_makes_version_1(lambda_client):
    name = unique_name("publishcreate")
    resp = create_function(lambda_client, name, Publish=True)
    assert status(resp) == 201
    assert resp["Version"] == "1"
    assert resp["FunctionArn"] == arn(name)
    got = lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"]
    assert got["Version"] == "1" and got["FunctionArn"] == arn(name, "1")
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"


def test_publish_with_wrong_revision_id_is_412(lambda_client):
    name = unique_name("pubrev")
    create_function(lambda_client, name)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.publish_version(FunctionName=name, RevisionId="wrong")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        412, "PreconditionFailedException", PRECONDITION)
    rev = lambda_client.get_function(FunctionName=name)["Configuration"]["RevisionId"]
    assert lambda_client.publish_version(FunctionName=name, RevisionId=rev)["Version"] == "1"


def test_publish_with_wrong_code_sha256_is_rejected(lambda_client):
    name = unique_name("pubsha")
    zip_bytes = code("sha")
    create_function(lambda_client, name, zip_bytes=zip_bytes)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.publish_version(FunctionName=name, CodeSha256="somenonexistentsha256")
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidParameterValueException")
    assert err["message"] == (
        f"CodeSHA256 (somenonexistentsha256) is different from current CodeSHA256 in $LATEST "
        f"({code_sha256(zip_bytes)}). Please try again with the CodeSHA256 in $LATEST.")
    ok = lambda_client.publish_version(FunctionName=name, CodeSha256=code_sha256(zip_bytes))
    assert ok["Version"] == "1"


def test_publish_version_of_missing_function_is_404(lambda_client):
    name = unique_name("nofn")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.publish_version(FunctionName=name)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(name)}")


# --------------------------------------------------------------------------------------------
# ListVersionsByFunction, qualified Get/Delete
# --------------------------------------------------------------------------------------------

def test_list_versions_latest_first_with_qualified_arns(lambda_client, versioned):
    name = versioned["name"]
    resp = lambda_client.list_versions_by_function(FunctionName=name)
    versions = resp["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    assert [v["FunctionArn"] for v in versions] == [
        arn(name, "$LATEST"), arn(name, "1"), arn(name, "2")]
    assert versions[0]["CodeSha256"] == code_sha256(code("C"))
    assert versions[1]["Description"] == "first"
    assert versions[2]["Environment"] == {"Variables": {"STAGE": "two"}}
    assert "NextMarker" not in resp


def test_list_versions_paginates(lambda_client, versioned):
    name = versioned["name"]
    seen, marker, pages = [], None, 0
    while True:
        kwargs = {"FunctionName": name, "MaxItems": 1}
        if marker:
            kwargs["Marker"] = marker
        page = lambda_client.list_versions_by_function(**kwargs)
        assert len(page["Versions"]) == 1
        seen += [v["Version"] for v in page["Versions"]]
        pages += 1
        marker = page.get("NextMarker")
        if not marker:
            break
        assert pages < 10
    assert seen == ["$LATEST", "1", "2"]
    paginator = lambda_client.get_paginator("list_versions_by_function")
    via_paginator = [v["Version"] for p in paginator.paginate(
        FunctionName=name, PaginationConfig={"PageSize": 2}) for v in p["Versions"]]
    assert via_paginator == ["$LATEST", "1", "2"]


def test_list_versions_of_missing_function_is_404(lambda_client):
    name = unique_name("nofn")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.list_versions_by_function(FunctionName=name)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(name)}")


def test_get_function_with_version_and_latest_qualifier(lambda_client, versioned):
    name = versioned["name"]
    v1 = lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"]
    assert v1["Version"] == "1"
    assert v1["FunctionArn"] == arn(name, "1")
    assert v1["CodeSha256"] == code_sha256(code("A"))
    assert v1["RevisionId"] == versioned["v1"]["RevisionId"]
    via_arn = lambda_client.get_function_configuration(FunctionName=arn(name, "2"))
    assert via_arn["Version"] == "2" and via_arn["CodeSha256"] == code_sha256(code("B"))
    latest = lambda_client.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]
    assert latest["Version"] == "$LATEST"
    assert latest["FunctionArn"] == arn(name, "$LATEST")
    assert latest["CodeSha256"] == code_sha256(code("C"))


def test_get_function_with_alias_qualifier_shows_the_alias_arn(lambda_client, versioned):
    name = versioned["name"]
    conf = lambda_client.get_function(FunctionName=name, Qualifier="live")["Configuration"]
    assert conf["FunctionArn"] == arn(name, "live")
    assert conf["Version"] == "1"
    assert conf["CodeSha256"] == code_sha256(code("A"))
    by_arn = lambda_client.get_function(FunctionName=arn(name, "live"))["Configuration"]
    assert by_arn["FunctionArn"] == arn(name, "live")


@pytest.mark.parametrize("qualifier", ["1221", "aliasdoesnotexist"])
def test_get_missing_version_or_alias_is_404(lambda_client, versioned, qualifier):
    name = versioned["name"]
    for call in (lambda_client.get_function, lambda_client.get_function_configuration):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(FunctionName=name, Qualifier=qualifier)
        err = client_error(e)
        assert (err["status"], err["code"], err["message"]) == (
            404, "ResourceNotFoundException", f"Function not found: {arn(name, qualifier)}")


def test_qualifier_mismatch_with_arn_is_400(lambda_client, versioned):
    name = versioned["name"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.get_function(FunctionName=arn(name, "1"), Qualifier="2")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.")


def test_delete_latest_qualifier_is_refused(lambda_client, versioned):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.delete_function(FunctionName=versioned["name"], Qualifier="$LATEST")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "InvalidParameterValueException",
        "$LATEST version cannot be deleted without deleting the function.")


def test_delete_version_used_by_alias_is_409(lambda_client, versioned):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.delete_function(FunctionName=versioned["name"], Qualifier="1")
    err = client_error(e)
    assert (err["status"], err["code"]) == (409, "ResourceConflictException")
    assert err["message"].startswith(
        "Unable to delete version because the following aliases reference it: [")
    assert "live" in err["message"] and "canary" in err["message"]
    # Still there.
    assert lambda_client.get_function(FunctionName=versioned["name"], Qualifier="1")


def test_delete_version_then_list_and_get(lambda_client):
    name = unique_name("delver")
    create_function(lambda_client, name, zip_bytes=code("d1"))
    lambda_client.publish_version(FunctionName=name)
    update_code(lambda_client, name, code("d2"))
    lambda_client.publish_version(FunctionName=name)
    resp = lambda_client.delete_function(FunctionName=name, Qualifier="1")
    assert status(resp) == 204
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "2"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.get_function(FunctionName=name, Qualifier="1")
    assert client_error(e)["status"] == 404
    # Deleting a missing version is idempotent, as on AWS.
    assert status(lambda_client.delete_function(FunctionName=name, Qualifier="1")) == 204
    assert status(lambda_client.delete_function(FunctionName=name, Qualifier="1233")) == 204
    # Version numbers are never reused.
    update_code(lambda_client, name, code("d3"))
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "3"
    # The function itself is intact.
    assert lambda_client.get_function(FunctionName=name)["Configuration"]["Version"] == "$LATEST"


def test_delete_with_qualifier_on_missing_function_is_404(lambda_client):
    name = unique_name("nofn")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.delete_function(FunctionName=name, Qualifier="1233")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(name)}")


# --------------------------------------------------------------------------------------------
# Published versions are immutable and run their own code
# --------------------------------------------------------------------------------------------

def test_each_version_runs_its_own_code_and_configuration(lambda_client, versioned):
    name = versioned["name"]
    expectations = {
        "1": {"code": "A", "version": "1", "env": "one"},
        "2": {"code": "B", "version": "2", "env": "two"},
        "$LATEST": {"code": "C", "version": "$LATEST", "env": "two"},
    }
    for qualifier, expected in expectations.items():
        resp, payload = invoke_json(lambda_client, name, {}, Qualifier=qualifier)
        assert resp["StatusCode"] == 200, payload
        assert resp["ExecutedVersion"] == qualifier
        assert {k: payload[k] for k in ("code", "version", "env")} == expected
        assert payload["arn"] == arn(name, qualifier)
    _, payload = invoke_json(lambda_client, f"{name}:1", {})
    assert payload["code"] == "A"


def test_updating_latest_does_not_change_a_published_version(lambda_client):
    name = unique_name("immutable")
    create_function(lambda_client, name, zip_bytes=code("old"),
                    Environment={"Variables": {"STAGE": "old"}})
    v1 = lambda_client.publish_version(FunctionName=name)
    _, before = invoke_json(lambda_client, name, {}, Qualifier="1")
    assert before["code"] == "old"
    update_code(lambda_client, name, code("new"))
    update_config(lambda_client, name, Environment={"Variables": {"STAGE": "new"}},
                  Timeout=9)
    _, latest = invoke_json(lambda_client, name, {})
    assert (latest["code"], latest["env"]) == ("new", "new")
    resp, after = invoke_json(lambda_client, name, {}, Qualifier="1")
    assert resp["ExecutedVersion"] == "1"
    assert (after["code"], after["env"]) == ("old", "old")
    conf = lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")
    assert conf["CodeSha256"] == v1["CodeSha256"] == code_sha256(code("old"))
    assert conf["Timeout"] == 3
    assert conf["RevisionId"] == v1["RevisionId"]


def test_update_configuration_of_a_version_is_refused(raw_client, versioned):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.update_function_configuration(
            FunctionName=arn(versioned["name"], "1"), Description="nope")
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidParameterValueException")


# --------------------------------------------------------------------------------------------
# Aliases
# --------------------------------------------------------------------------------------------

def test_create_alias_returns_201_and_get_alias_returns_it(lambda_client, versioned):
    name = versioned["name"]
    live = versioned["live"]
    assert status(live) == 201
    assert body(live) == {
        "AliasArn": arn(name, "live"),
        "Name": "live",
        "FunctionVersion": "1",
        "Description": "the live one",
        "RevisionId": live["RevisionId"],
    }
    assert UUID.match(live["RevisionId"])
    got = lambda_client.get_alias(FunctionName=name, Name="live")
    assert status(got) == 200
    assert body(got) == body(live)
    canary = lambda_client.get_alias(FunctionName=arn(name), Name="canary")
    assert canary["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}
    assert canary["Description"] == ""


def test_list_aliases_and_filter_by_version(lambda_client, versioned):
    name = versioned["name"]
    resp = lambda_client.list_aliases(FunctionName=name)
    assert status(resp) == 200
    by_name = {a["Name"]: a for a in resp["Aliases"]}
    assert set(by_name) == {"live", "canary"}
    assert by_name["canary"]["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}
    assert "RoutingConfig" not in by_name["live"]
    assert by_name["live"]["AliasArn"] == arn(name, "live")
    only_1 = lambda_client.list_aliases(FunctionName=name, FunctionVersion="1")["Aliases"]
    assert {a["Name"] for a in only_1} == {"live", "canary"}
    only_2 = lambda_client.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]
    assert only_2 == []
    page = lambda_client.list_aliases(FunctionName=name, MaxItems=1)
    assert len(page["Aliases"]) == 1 and page.get("NextMarker")
    rest = lambda_client.list_aliases(FunctionName=name, Marker=page["NextMarker"])
    assert {a["Name"] for a in page["Aliases"] + rest["Aliases"]} == {"live", "canary"}


def test_alias_lifecycle_update_and_delete(lambda_client):
    name = unique_name("alias")
    create_function(lambda_client, name, zip_bytes=code("a1"))
    lambda_client.publish_version(FunctionName=name)
    update_code(lambda_client, name, code("a2"))
    lambda_client.publish_version(FunctionName=name)

    created = lambda_client.create_alias(
        FunctionName=name, Name="prod", FunctionVersion="1", Description="d",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.2}})
    assert created["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.2}}

    updated = lambda_client.update_alias(FunctionName=name, Name="prod", FunctionVersion="2",
                                         RoutingConfig={"AdditionalVersionWeights": {}})
    assert status(updated) == 200
    assert updated["FunctionVersion"] == "2"
    assert updated["Description"] == "d"  # unchanged when not given
    assert "RoutingConfig" not in updated or updated["RoutingConfig"] in (
        {}, {"AdditionalVersionWeights": {}})
    assert updated["RevisionId"] != created["RevisionId"]
    assert body(lambda_client.get_alias(FunctionName=name, Name="prod")) == body(updated)

    only_desc = lambda_client.update_alias(FunctionName=name, Name="prod", Description="new")
    assert (only_desc["FunctionVersion"], only_desc["Description"]) == ("2", "new")

    deleted = lambda_client.delete_alias(FunctionName=name, Name="prod")
    assert status(deleted) == 204
    assert lambda_client.list_aliases(FunctionName=name)["Aliases"] == []
    # Deleting a missing alias is idempotent on AWS (204).
    assert status(lambda_client.delete_alias(FunctionName=name, Name="prod")) == 204


def test_alias_to_latest_is_allowed(lambda_client, versioned):
    name = unique_name("aliaslatest")
    create_function(lambda_client, name)
    resp = lambda_client.create_alias(FunctionName=name, Name="head", FunctionVersion="$LATEST")
    assert resp["FunctionVersion"] == "$LATEST"
    r, payload = invoke_json(lambda_client, name, "x", Qualifier="head")
    assert r["ExecutedVersion"] == "$LATEST" and payload == "x"


def test_alias_named_with_a_date_is_allowed_but_numbers_are_not(raw_client, versioned):
    name = versioned["name"]
    ok = raw_client.create_alias(FunctionName=name, Name="2024-01-02", FunctionVersion="1")
    assert ok["AliasArn"] == arn(name, "2024-01-02")
    try:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            raw_client.create_alias(FunctionName=name, Name="2024", FunctionVersion="1")
        err = client_error(e)
        assert (err["status"], err["code"], err["message"]) == (
            400, "ValidationException",
            "1 validation error detected: Value '2024' at 'name' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
    finally:
        raw_client.delete_alias(FunctionName=name, Name="2024-01-02")


def test_duplicate_alias_is_409(lambda_client, versioned):
    name = versioned["name"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        409, "ResourceConflictException", f"Alias already exists: {arn(name, 'live')}")
    assert lambda_client.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"


def test_missing_alias_messages(lambda_client, versioned):
    name = versioned["name"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.get_alias(FunctionName=name, Name="non-existent")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException",
        f"Cannot find alias arn: {arn(name, 'non-existent')}")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.update_alias(FunctionName=name, Name="non-existent", Description="x")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Alias not found: {arn(name, 'non-existent')}")


def test_alias_on_missing_function_or_version(lambda_client, versioned):
    name = versioned["name"]
    missing = unique_name("nofn")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.create_alias(FunctionName=missing, Name="a", FunctionVersion="1")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(missing, '1')}")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.create_alias(FunctionName=name, Name="a", FunctionVersion="10")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(name, '10')}")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.list_aliases(FunctionName=missing)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(missing)}")


WEIGHT_RANGE = ("failed to satisfy constraint: Map value must satisfy constraint: [Member must "
                "have value less than or equal to 1.0, Member must have value greater than or "
                "equal to 0.0, Member must not be null]")


@pytest.mark.parametrize("routing, fv, expected", [
    ({"2": 0.5, "3": 0.1}, "1", (400, "InvalidParameterValueException",
                                "Number of items in AdditionalVersionWeights cannot be greater "
                                "than 1")),
    ({"2": 2.0}, "1", (400, "ValidationException",
                       "1 validation error detected: Value '{2=2.0}' at "
                       "'routingConfig.additionalVersionWeights' " + WEIGHT_RANGE)),
    ({"2": -1.0}, "1", (400, "ValidationException",
                        "1 validation error detected: Value '{2=-1.0}' at "
                        "'routingConfig.additionalVersionWeights' " + WEIGHT_RANGE)),
    ({"1": 0.5}, "1", (400, "InvalidParameterValueException",
                       "Invalid function version 1. Function version 1 is already included in "
                       "routing configuration.")),
    ({"2": 0.5}, "$LATEST", (400, "InvalidParameterValueException",
                             "$LATEST is not supported for an alias pointing to more than 1 "
                             "version")),
    ({"$LATEST": 0.5}, "1", (400, "ValidationException",
                             "1 validation error detected: Value '{$LATEST=0.5}' at "
                             "'routingConfig.additionalVersionWeights' failed to satisfy "
                             "constraint: Map keys must satisfy constraint: [Member must have "
                             "length less than or equal to 1024, Member must have length greater "
                             "than or equal to 1, Member must satisfy regular expression "
                             "pattern: [0-9]+]")),
], ids=["too-many", "too-high", "sub-zero", "same-version", "latest-target", "latest-key"])
def test_invalid_routing_configs(raw_client, versioned, routing, fv, expected):
    name = versioned["name"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.create_alias(FunctionName=name, Name="badrouting", FunctionVersion=fv,
                                RoutingConfig={"AdditionalVersionWeights": routing})
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected
    with pytest.raises(botocore.exceptions.ClientError):
        raw_client.get_alias(FunctionName=name, Name="badrouting")


def test_routing_to_a_missing_version_is_404(raw_client, versioned):
    name = versioned["name"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.create_alias(FunctionName=name, Name="badrouting", FunctionVersion="1",
                                RoutingConfig={"AdditionalVersionWeights": {"10": 0.5}})
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(name, '10')}")


def test_update_alias_with_wrong_revision_id_is_412(lambda_client, versioned):
    name = versioned["name"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                                   RevisionId="wrong")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        412, "PreconditionFailedException", PRECONDITION)
    current = lambda_client.get_alias(FunctionName=name, Name="live")
    assert current["FunctionVersion"] == "1"
    same = lambda_client.update_alias(FunctionName=name, Name="live",
                                      RevisionId=current["RevisionId"])
    assert same["FunctionVersion"] == "1"


def test_invoke_alias_runs_its_version(lambda_client, versioned):
    name = versioned["name"]
    resp, payload = invoke_json(lambda_client, name, {}, Qualifier="live")
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "1"
    assert payload["code"] == "A" and payload["version"] == "1"
    assert payload["arn"] == arn(name, "live")
    resp, payload = invoke_json(lambda_client, arn(name, "live"), {})
    assert resp["ExecutedVersion"] == "1" and payload["code"] == "A"


def test_invoke_missing_alias_is_404(lambda_client, versioned):
    name = versioned["name"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.invoke(FunctionName=name, Qualifier="nosuchalias", Payload=b"{}")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException", f"Function not found: {arn(name, 'nosuchalias')}")


def test_weighted_alias_spreads_invokes_over_both_versions(lambda_client, versioned):
    name = versioned["name"]
    counts = collections.Counter()
    for _ in range(40):
        resp, payload = invoke_json(lambda_client, name, {}, Qualifier="canary")
        assert resp["ExecutedVersion"] == payload["version"]
        assert payload["code"] == {"1": "A", "2": "B"}[payload["version"]]
        counts[resp["ExecutedVersion"]] += 1
    assert set(counts) == {"1", "2"}, counts
    # 50/50 over 40 invokes: P(either side < 8) is below 1e-4.
    assert min(counts.values()) >= 8, counts


# --------------------------------------------------------------------------------------------
# DeleteFunction cascades
# --------------------------------------------------------------------------------------------

def test_delete_function_removes_versions_aliases_and_sub_resources(lambda_client):
    name = unique_name("cascade")
    create_function(lambda_client, name, zip_bytes=code("x"))
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="a", FunctionVersion="1")
    lambda_client.add_permission(FunctionName=name, StatementId="s1",
                                 Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")
    lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)

    assert status(lambda_client.delete_function(FunctionName=name)) == 204
    for call, kwargs in [
        (lambda_client.get_function, {"Qualifier": "1"}),
        (lambda_client.get_alias, {"Name": "a"}),
        (lambda_client.list_versions_by_function, {}),
    ]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(FunctionName=name, **kwargs)
        assert client_error(e)["status"] == 404

    # Re-created under the same name: nothing of the old function remains.
    create_function(lambda_client, name, zip_bytes=code("y"))
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST"]
    assert lambda_client.list_aliases(FunctionName=name)["Aliases"] == []
    for call in (lambda_client.get_policy, lambda_client.get_function_url_config,
                 lambda_client.get_function_event_invoke_config):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(FunctionName=name)
        assert client_error(e)["code"] == "ResourceNotFoundException", call
    conc = lambda_client.get_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in conc
    # Version numbering restarts for a new function.
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"
    lambda_client.delete_function(FunctionName=name)


def test_delete_function_by_version_arn_deletes_only_that_version(lambda_client):
    name = unique_name("delarn")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    assert status(lambda_client.delete_function(FunctionName=arn(name, "1"))) == 204
    assert [v["Version"] for v in lambda_client.list_versions_by_function(
        FunctionName=name)["Versions"]] == ["$LATEST"]


# --------------------------------------------------------------------------------------------
# Publishing through UpdateFunctionCode, listing all versions
# --------------------------------------------------------------------------------------------

def test_update_function_code_with_publish_answers_the_new_version(lambda_client):
    name = unique_name("codepublish")
    create_function(lambda_client, name, zip_bytes=code("p1"))
    resp = lambda_client.update_function_code(FunctionName=name, ZipFile=code("p2"),
                                              Publish=True)
    # As recorded on AWS: the response describes the published version, qualified ARN included.
    assert resp["Version"] == "1"
    assert resp["FunctionArn"] == arn(name, "1")
    assert resp["CodeSha256"] == code_sha256(code("p2"))
    wait_active(lambda_client, name)
    wait_active(lambda_client, f"{name}:1")  # the published version settles on its own
    _, payload = invoke_json(lambda_client, name, {}, Qualifier="1")
    assert payload["code"] == "p2"


def test_list_functions_all_versions(lambda_client, versioned):
    name = versioned["name"]
    mine = [f for page in lambda_client.get_paginator("list_functions").paginate(
        FunctionVersion="ALL") for f in page["Functions"] if f["FunctionName"] == name]
    assert [(f["Version"], f["FunctionArn"]) for f in mine] == [
        ("$LATEST", arn(name, "$LATEST")), ("1", arn(name, "1")), ("2", arn(name, "2"))]
    latest_only = [f for page in lambda_client.get_paginator("list_functions").paginate()
                   for f in page["Functions"] if f["FunctionName"] == name]
    assert [(f["Version"], f["FunctionArn"]) for f in latest_only] == [("$LATEST", arn(name))]


@pytest.mark.parametrize("op", [
    "get_function_url_config", "get_function_code_signing_config",
    "get_function_event_invoke_config", "get_function_concurrency",
])
def test_sub_resources_of_a_function_in_another_region(lambda_client, versioned, op):
    """The operations AWS was recorded answering for an ARN of another region."""
    wrong = f"arn:aws:lambda:eu-central-1:{DEFAULT_ACCOUNT}:function:{versioned['name']}"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        getattr(lambda_client, op)(FunctionName=wrong)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        404, "ResourceNotFoundException",
        f"Functions from 'eu-central-1' are not reachable in this region ('{REGION}')")
