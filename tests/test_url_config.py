"""Function URL configs as AWS Lambda answers them: Create / Get / Update / Delete /
ListFunctionUrlConfigs on a function and on an alias (never a version or $LATEST), the URL's
shape, AuthType and Cors, duplicates (409), every not-found and qualifier error, and that a URL
really reaches its function over plain HTTP. Messages are those recorded against real AWS."""

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    make_zip,
    unique_name,
)

NOT_FOUND = "The resource you requested does not exist."
NO_FUNCTION = "Function does not exist"
MISMATCH = "The derived qualifier from the function name does not match the specified qualifier."
# AWS: https://<32 lowercase alphanumerics>.lambda-url.<region>.on.aws/ ; Flint serves the same
# 32-character URL id under its own endpoint. Either way: an id, and a trailing slash.
URL_ID = re.compile(r"[a-z0-9]{32}")


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def qualifier_pattern_error(value):
    return (400, "ValidationException",
            f"1 validation error detected: Value '{value}' at 'qualifier' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "((?!^\\d+$)^[0-9a-zA-Z-_]+$)")


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs


@pytest.fixture(scope="module")
def fn(lambda_client):
    """A function with version 1 and alias `urlalias` → 1, no URL configs."""
    name = unique_name("url")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="urlalias", FunctionVersion="1")
    return name


def test_url_config_lifecycle(lambda_client):
    name = unique_name("urllife")
    create_function(lambda_client, name)
    created = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert status(created) == 201
    assert created["FunctionArn"] == arn(name)
    assert created["AuthType"] == "NONE"
    url = created["FunctionUrl"]
    assert url.endswith("/") and URL_ID.search(url), url
    assert isinstance(created["CreationTime"], str) and created["CreationTime"]

    expect_error(lambda_client.create_function_url_config,
                 (409, "ResourceConflictException",
                  f"Failed to create function url config for [functionArn = {arn(name)}]. "
                  "Error message:  FunctionUrlConfig exists for this Lambda function"),
                 FunctionName=name, AuthType="NONE")

    got = lambda_client.get_function_url_config(FunctionName=name)
    assert status(got) == 200
    assert (got["FunctionUrl"], got["FunctionArn"], got["AuthType"]) == (url, arn(name), "NONE")
    assert got["InvokeMode"] == "BUFFERED"
    assert got["CreationTime"] == created["CreationTime"]
    assert got["LastModifiedTime"]

    updated = lambda_client.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert status(updated) == 200
    assert (updated["AuthType"], updated["FunctionUrl"]) == ("AWS_IAM", url)
    assert updated["CreationTime"] == created["CreationTime"]
    assert lambda_client.get_function_url_config(FunctionName=name)["AuthType"] == "AWS_IAM"

    deleted = lambda_client.delete_function_url_config(FunctionName=name)
    assert status(deleted) == 204
    expect_error(lambda_client.get_function_url_config,
                 (404, "ResourceNotFoundException", NOT_FOUND), FunctionName=name)
    # A new config gets a new URL.
    again = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert again["FunctionUrl"] != url


def test_cors_and_invoke_mode_round_trip(lambda_client):
    name = unique_name("urlcors")
    create_function(lambda_client, name)
    cors = {"AllowCredentials": True, "AllowHeaders": ["x-custom"], "AllowMethods": ["GET", "POST"],
            "AllowOrigins": ["https://example.com"], "ExposeHeaders": ["x-exposed"],
            "MaxAge": 300}
    created = lambda_client.create_function_url_config(
        FunctionName=name, AuthType="AWS_IAM", Cors=cors, InvokeMode="RESPONSE_STREAM")
    assert created["Cors"] == cors
    got = lambda_client.get_function_url_config(FunctionName=name)
    assert got["Cors"] == cors
    assert got["InvokeMode"] == "RESPONSE_STREAM"
    # Update changes only what it is given.
    updated = lambda_client.update_function_url_config(FunctionName=name,
                                                       Cors={"MaxAge": 10})
    assert updated["AuthType"] == "AWS_IAM"
    assert updated["Cors"] == {"MaxAge": 10}
    # Once set, InvokeMode stays in Update's answer (AWS's recorded answer in LocalStack's
    # test_lambda_update_function_url_config).
    assert updated["InvokeMode"] == "RESPONSE_STREAM"
    updated = lambda_client.update_function_url_config(FunctionName=name, InvokeMode="BUFFERED")
    assert lambda_client.get_function_url_config(FunctionName=name)["InvokeMode"] == "BUFFERED"


def test_invalid_auth_type_and_invoke_mode(raw_client):
    name = unique_name("urlbad")
    create_function(raw_client, name)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.create_function_url_config(FunctionName=name, AuthType="BASIC")
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "ValidationException")
    assert "'BASIC' at 'authType'" in err["message"]
    expect_error(raw_client.create_function_url_config,
                 (400, "ValidationException",
                  "1 validation error detected: Value 'UNKNOWN' at 'invokeMode' failed to "
                  "satisfy constraint: Member must satisfy enum value set: [RESPONSE_STREAM, "
                  "BUFFERED]"),
                 FunctionName=name, AuthType="NONE", InvokeMode="UNKNOWN")


def test_url_on_alias_and_listing(lambda_client, fn):
    expect_error(lambda_client.list_function_url_configs,
                 (404, "ResourceNotFoundException", NO_FUNCTION), FunctionName="doesnotexist")
    assert lambda_client.list_function_url_configs(FunctionName=fn)["FunctionUrlConfigs"] == []

    on_fn = lambda_client.create_function_url_config(FunctionName=fn, AuthType="NONE")
    on_alias = lambda_client.create_function_url_config(
        FunctionName=f"{fn}:urlalias", Qualifier="urlalias", AuthType="NONE")
    try:
        assert on_alias["FunctionArn"] == arn(fn, "urlalias")
        assert on_alias["FunctionUrl"] != on_fn["FunctionUrl"]
        configs = lambda_client.list_function_url_configs(FunctionName=fn)["FunctionUrlConfigs"]
        assert sorted(c["FunctionArn"] for c in configs) == [arn(fn), arn(fn, "urlalias")]
        assert all(c["InvokeMode"] == "BUFFERED" and c["LastModifiedTime"] for c in configs)

        first = lambda_client.list_function_url_configs(FunctionName=fn, MaxItems=1)
        assert len(first["FunctionUrlConfigs"]) == 1
        second = lambda_client.list_function_url_configs(FunctionName=fn, MaxItems=1,
                                                         Marker=first["NextMarker"])
        assert len(second["FunctionUrlConfigs"]) == 1
        assert {first["FunctionUrlConfigs"][0]["FunctionUrl"],
                second["FunctionUrlConfigs"][0]["FunctionUrl"]} == {
            on_fn["FunctionUrl"], on_alias["FunctionUrl"]}

        # Deleting the unqualified config leaves the alias's in place.
        lambda_client.delete_function_url_config(FunctionName=fn)
        kept = lambda_client.get_function_url_config(FunctionName=fn, Qualifier="urlalias")
        assert kept["FunctionUrl"] == on_alias["FunctionUrl"]
        expect_error(lambda_client.get_function_url_config,
                     (404, "ResourceNotFoundException", NOT_FOUND), FunctionName=fn)
    finally:
        for kwargs in ({"FunctionName": fn}, {"FunctionName": fn, "Qualifier": "urlalias"}):
            try:
                lambda_client.delete_function_url_config(**kwargs)
            except botocore.exceptions.ClientError:
                pass


def test_deleting_an_alias_deletes_its_url(lambda_client):
    name = unique_name("urlaliasdel")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="a", FunctionVersion="1")
    lambda_client.create_function_url_config(FunctionName=name, Qualifier="a", AuthType="NONE")
    lambda_client.delete_alias(FunctionName=name, Name="a")
    assert lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"] == []


NAME_AND_QUALIFIER_CASES = [
    # (kwargs, error for create/update, error for get/delete)
    ({"FunctionName": "doesnotexist"},
     (404, "ResourceNotFoundException", NO_FUNCTION), (404, "ResourceNotFoundException",
                                                       NOT_FOUND)),
    ({"FunctionName": arn("doesnotexist")},
     (404, "ResourceNotFoundException", NO_FUNCTION), (404, "ResourceNotFoundException",
                                                       NOT_FOUND)),
    ({"FunctionName": "doesnotexist", "Qualifier": "1"},
     qualifier_pattern_error("1"), qualifier_pattern_error("1")),
    ({"FunctionName": "{fn}", "Qualifier": "1"},
     qualifier_pattern_error("1"), qualifier_pattern_error("1")),
    ({"FunctionName": "{fn}", "Qualifier": "2"},
     qualifier_pattern_error("2"), qualifier_pattern_error("2")),
    ({"FunctionName": "{fn}", "Qualifier": "v1"},
     (404, "ResourceNotFoundException", NO_FUNCTION), (404, "ResourceNotFoundException",
                                                       NOT_FOUND)),
    ({"FunctionName": "{fn}", "Qualifier": "$LATEST"},
     qualifier_pattern_error("$LATEST"), qualifier_pattern_error("$LATEST")),
]


@pytest.mark.parametrize("op", ["create", "update", "get", "delete"])
def test_name_and_qualifier_errors(raw_client, fn, op):
    call = getattr(raw_client, f"{op}_function_url_config")
    extra = {"AuthType": "NONE"} if op in ("create", "update") else {}
    for kwargs, write_error, read_error in NAME_AND_QUALIFIER_CASES:
        kwargs = {k: v.format(fn=fn) for k, v in kwargs.items()}
        expected = write_error if op in ("create", "update") else read_error
        expect_error(call, expected, **kwargs, **extra)
    if op != "delete":  # AWS answers delete's mismatch with an internal failure
        expect_error(call, (400, "InvalidParameterValueException", MISMATCH),
                     FunctionName=f"{fn}:urlalias-doesnotmatch", Qualifier="urlalias", **extra)
    if op != "create":
        expect_error(call, (404, "ResourceNotFoundException", NOT_FOUND), FunctionName=fn,
                     **extra)


def test_get_url_config_of_missing_function(lambda_client):
    expect_error(lambda_client.get_function_url_config,
                 (404, "ResourceNotFoundException", NOT_FOUND),
                 FunctionName=unique_name("nofn"))


URL_HANDLER = make_zip({"index.py": (
    "import json\n"
    "def handler(event, context):\n"
    "    return {'statusCode': 201, 'headers': {'x-flint': 'yes'},\n"
    "            'body': json.dumps(event)}\n")})


def test_function_url_reaches_the_function_over_http(lambda_client):
    name = unique_name("urlhttp")
    create_function(lambda_client, name, zip_bytes=URL_HANDLER)
    url = lambda_client.create_function_url_config(FunctionName=name,
                                                   AuthType="NONE")["FunctionUrl"]
    # AuthType NONE still needs a public resource-based policy, as on AWS (the guide asks for
    # both statements; `lambda:InvokeFunctionUrl` alone is enough, as AWS answered in 2025-11).
    lambda_client.add_permission(FunctionName=name, StatementId="public-url",
                                 Action="lambda:InvokeFunctionUrl", Principal="*",
                                 FunctionUrlAuthType="NONE")
    lambda_client.add_permission(FunctionName=name, StatementId="public-invoke",
                                 Action="lambda:InvokeFunction", Principal="*",
                                 InvokedViaFunctionUrl=True)
    # Python does not resolve *.localhost (browsers and curl do): the path form, same port.
    parts = urllib.parse.urlsplit(url)
    url = f"http://127.0.0.1:{parts.port}/_flint/url/{parts.hostname.split('.')[0]}/"
    req = urllib.request.Request(url + "some/path?q=1", data=b"hello", method="POST",
                                 headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            code, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        code, headers, raw = e.code, dict(e.headers), e.read()
    assert code == 201, raw
    assert headers.get("x-flint") == "yes"
    event = json.loads(raw)
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "q=1"
    assert event["requestContext"]["http"]["method"] == "POST"
    body = event["body"]
    if event.get("isBase64Encoded"):
        import base64
        body = base64.b64decode(body).decode()
    assert body == "hello"
