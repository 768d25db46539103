"""Asynchronous-invocation configs as AWS Lambda answers them: Put (replaces the whole config) /
Update (merges) / Get / List / Delete of FunctionEventInvokeConfig on $LATEST, versions and
aliases in every form of name and qualifier; destination validation; the not-found messages;
and that an OnSuccess/OnFailure Lambda destination really receives the invocation record.
Messages are those recorded against real AWS (test_lambda_api.snapshot.json)."""

import datetime
import json

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

EMPTY_DESTINATIONS = {"OnFailure": {}, "OnSuccess": {}}
MISMATCH = "The derived qualifier from the function name does not match the specified qualifier."
NO_FUNCTION = "The function doesn't exist."


def arn(name, qualifier=None, service="lambda"):
    base = f"arn:aws:{service}:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def no_config(name, qualifier="$LATEST"):
    return f"The function {arn(name, qualifier)} doesn't have an EventInvokeConfig"


def body(resp):
    return {k: v for k, v in resp.items() if k not in ("ResponseMetadata", "LastModified")}


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs


@pytest.fixture(scope="module")
def fn(lambda_client):
    """A function with version 1 and alias `eventinvokealias` → 1."""
    name = unique_name("eic")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="eventinvokealias", FunctionVersion="1")
    return name


@pytest.fixture(scope="module")
def other_fn(lambda_client):
    name = unique_name("eicdest")
    create_function(lambda_client, name)
    return name


def test_put_get_list_delete_lifecycle(lambda_client):
    name = unique_name("eiclife")
    create_function(lambda_client, name)
    put = lambda_client.put_function_event_invoke_config(FunctionName=name,
                                                         MaximumRetryAttempts=0)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert body(put) == {"DestinationConfig": EMPTY_DESTINATIONS,
                         "FunctionArn": arn(name, "$LATEST"), "MaximumRetryAttempts": 0}
    assert isinstance(put["LastModified"], datetime.datetime)

    # Put replaces the whole configuration.
    put = lambda_client.put_function_event_invoke_config(FunctionName=name,
                                                         MaximumEventAgeInSeconds=60)
    assert body(put) == {"DestinationConfig": EMPTY_DESTINATIONS,
                         "FunctionArn": arn(name, "$LATEST"), "MaximumEventAgeInSeconds": 60}
    # Update merges into it.
    updated = lambda_client.update_function_event_invoke_config(FunctionName=name,
                                                                MaximumRetryAttempts=1)
    assert body(updated) == {"DestinationConfig": EMPTY_DESTINATIONS,
                             "FunctionArn": arn(name, "$LATEST"),
                             "MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 1}
    got = lambda_client.get_function_event_invoke_config(FunctionName=name)
    assert body(got) == body(updated)
    assert body(lambda_client.get_function_event_invoke_config(
        FunctionName=name, Qualifier="$LATEST")) == body(updated)
    listed = lambda_client.list_function_event_invoke_configs(FunctionName=name)
    assert [body(c) for c in listed["FunctionEventInvokeConfigs"]] == [body(updated)]

    lambda_client.publish_version(FunctionName=name)
    # A published version does not inherit $LATEST's config.
    expect_error(lambda_client.get_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config(name, "1")),
                 FunctionName=name, Qualifier="1")
    on_version = lambda_client.put_function_event_invoke_config(
        FunctionName=name, Qualifier="1", MaximumEventAgeInSeconds=120)
    assert on_version["FunctionArn"] == arn(name, "1")

    deleted = lambda_client.delete_function_event_invoke_config(FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    listed = lambda_client.list_function_event_invoke_configs(FunctionName=name)
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [arn(name, "1")]
    expect_error(lambda_client.delete_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config(name)),
                 FunctionName=name)


@pytest.mark.parametrize("kwargs, expected_qualifier", [
    ({"FunctionName": "{name}"}, "$LATEST"),
    ({"FunctionName": "{name}", "Qualifier": "$LATEST"}, "$LATEST"),
    ({"FunctionName": "{name}", "Qualifier": "1"}, "1"),
    ({"FunctionName": "{name}", "Qualifier": "eventinvokealias"}, "eventinvokealias"),
    ({"FunctionName": "{arn}:eventinvokealias"}, "eventinvokealias"),
    ({"FunctionName": "{arn}:eventinvokealias", "Qualifier": "eventinvokealias"},
     "eventinvokealias"),
    ({"FunctionName": "{name}:eventinvokealias"}, "eventinvokealias"),
    ({"FunctionName": "{name}:eventinvokealias", "Qualifier": "eventinvokealias"},
     "eventinvokealias"),
    ({"FunctionName": "{name}:1"}, "1"),
    ({"FunctionName": "{name}:$LATEST", "Qualifier": "$LATEST"}, "$LATEST"),
], ids=["name", "latest", "version", "alias", "qualified-arn", "qualified-arn-and-qualifier",
        "shorthand", "shorthand-and-qualifier", "version-shorthand", "latest-shorthand"])
def test_every_form_of_name_and_qualifier(lambda_client, fn, kwargs, expected_qualifier):
    kwargs = {k: v.format(name=fn, arn=arn(fn)) for k, v in kwargs.items()}
    put = lambda_client.put_function_event_invoke_config(MaximumRetryAttempts=1, **kwargs)
    try:
        assert body(put) == {"DestinationConfig": EMPTY_DESTINATIONS,
                             "FunctionArn": arn(fn, expected_qualifier),
                             "MaximumRetryAttempts": 1}
        got = lambda_client.get_function_event_invoke_config(**kwargs)
        assert got["FunctionArn"] == arn(fn, expected_qualifier)
    finally:
        lambda_client.delete_function_event_invoke_config(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"FunctionName": "{arn}:eventinvokealias", "Qualifier": "1"},
    {"FunctionName": "{name}:eventinvokealias", "Qualifier": "1"},
    {"FunctionName": "{name}:1", "Qualifier": "eventinvokealias"},
    {"FunctionName": "{name}:$LATEST", "Qualifier": "1"},
    {"FunctionName": "{name}:1", "Qualifier": "$LATEST"},
])
def test_qualifier_mismatch(lambda_client, fn, kwargs):
    kwargs = {k: v.format(name=fn, arn=arn(fn)) for k, v in kwargs.items()}
    expect_error(lambda_client.put_function_event_invoke_config,
                 (400, "InvalidParameterValueException", MISMATCH),
                 MaximumRetryAttempts=1, **kwargs)


def test_put_keeps_maximum_values_and_list_shows_all(lambda_client):
    name = unique_name("eiclist")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="a", FunctionVersion="1")
    maxed = lambda_client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=2, MaximumEventAgeInSeconds=21600)
    assert (maxed["MaximumRetryAttempts"], maxed["MaximumEventAgeInSeconds"]) == (2, 21600)
    lambda_client.put_function_event_invoke_config(FunctionName=name, Qualifier="1",
                                                   MaximumRetryAttempts=1)
    lambda_client.put_function_event_invoke_config(FunctionName=name, Qualifier="a",
                                                   MaximumRetryAttempts=1)
    configs = lambda_client.list_function_event_invoke_configs(
        FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in configs) == sorted(
        [arn(name, "$LATEST"), arn(name, "1"), arn(name, "a")])
    page = lambda_client.list_function_event_invoke_configs(FunctionName=name, MaxItems=1)
    assert len(page["FunctionEventInvokeConfigs"]) == 1 and page.get("NextMarker")
    for qualifier in ("$LATEST", "1", "a"):
        lambda_client.delete_function_event_invoke_config(FunctionName=name, Qualifier=qualifier)
    assert lambda_client.list_function_event_invoke_configs(
        FunctionName=name)["FunctionEventInvokeConfigs"] == []


def test_retry_and_age_limits_are_validated(raw_client, fn):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.put_function_event_invoke_config(FunctionName=fn, MaximumRetryAttempts=3)
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "ValidationException")
    assert "maximumRetryAttempts" in err["message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.put_function_event_invoke_config(FunctionName=fn,
                                                    MaximumEventAgeInSeconds=59)
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "ValidationException")
    assert "maximumEventAgeInSeconds" in err["message"]


def test_destinations(lambda_client, raw_client, fn, other_fn):
    ok = lambda_client.put_function_event_invoke_config(
        FunctionName=fn, DestinationConfig={"OnSuccess": {"Destination": arn(other_fn)}})
    assert ok["DestinationConfig"] == {"OnFailure": {},
                                       "OnSuccess": {"Destination": arn(other_fn)}}
    queue = f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT}:failures"
    ok = lambda_client.put_function_event_invoke_config(
        FunctionName=fn, DestinationConfig={"OnFailure": {"Destination": queue}})
    assert ok["DestinationConfig"] == {"OnFailure": {"Destination": queue}, "OnSuccess": {}}
    for side in ("OnSuccess", "OnFailure"):
        empty = lambda_client.put_function_event_invoke_config(
            FunctionName=fn, DestinationConfig={side: {}})
        assert empty["DestinationConfig"] == EMPTY_DESTINATIONS
    lambda_client.delete_function_event_invoke_config(FunctionName=fn)

    expect_error(raw_client.put_function_event_invoke_config,
                 (400, "InvalidParameterValueException",
                  "You must specify at least one of error handling or destination setting."),
                 FunctionName=fn)
    expect_error(raw_client.put_function_event_invoke_config,
                 (400, "InvalidParameterValueException",
                  f"The destination ARN {arn('doesnotexist')} is invalid."),
                 FunctionName=fn,
                 DestinationConfig={"OnSuccess": {"Destination": arn("doesnotexist")}})
    expect_error(raw_client.put_function_event_invoke_config,
                 (400, "InvalidParameterValueException",
                  "You can't specify the function as a destination for itself."),
                 FunctionName=fn, DestinationConfig={"OnSuccess": {"Destination": arn(fn)}})
    iam_arn = arn(fn, service="iam")
    expect_error(raw_client.put_function_event_invoke_config,
                 (400, "InvalidParameterValueException",
                  f"The provided destination config DestinationConfig(onSuccess=OnSuccess("
                  f"destination={iam_arn}), onFailure=null) is invalid."),
                 FunctionName=fn, DestinationConfig={"OnSuccess": {"Destination": iam_arn}})
    bad = f"arn:aws:_-/!lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{fn}"
    expect_error(raw_client.put_function_event_invoke_config,
                 (400, "ValidationException",
                  f"1 validation error detected: Value '{bad}' at "
                  "'destinationConfig.onFailure.destination' failed to satisfy constraint: "
                  "Member must satisfy regular expression pattern: "
                  "$|kafka://([^.]([a-zA-Z0-9\\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):"
                  "([a-zA-Z0-9\\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1})?:"
                  "(\\d{12})?:(.*)"),
                 FunctionName=fn, DestinationConfig={"OnFailure": {"Destination": bad}})


def test_not_found_messages(raw_client, fn):
    expect_error(raw_client.put_function_event_invoke_config,
                 (404, "ResourceNotFoundException", NO_FUNCTION),
                 FunctionName="doesnotexist", MaximumRetryAttempts=1)
    expect_error(raw_client.put_function_event_invoke_config,
                 (404, "ResourceNotFoundException", NO_FUNCTION),
                 FunctionName=arn("doesnotexist"), MaximumRetryAttempts=1)
    expect_error(raw_client.put_function_event_invoke_config,
                 (404, "ResourceNotFoundException", NO_FUNCTION),
                 FunctionName=fn, Qualifier="doesnotexist", MaximumRetryAttempts=1)
    expect_error(raw_client.update_function_event_invoke_config,
                 (404, "ResourceNotFoundException", NO_FUNCTION),
                 FunctionName="doesnotexist", MaximumRetryAttempts=1)
    expect_error(raw_client.list_function_event_invoke_configs,
                 (404, "ResourceNotFoundException", NO_FUNCTION),
                 FunctionName="doesnotexist")
    expect_error(raw_client.get_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config("doesnotexist")),
                 FunctionName="doesnotexist")
    expect_error(raw_client.delete_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config("doesnotexist")),
                 FunctionName="doesnotexist")
    expect_error(raw_client.get_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config(fn, "doesnotexist")),
                 FunctionName=fn, Qualifier="doesnotexist")
    expect_error(raw_client.get_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config(fn, "1221")),
                 FunctionName=fn, Qualifier="1221")
    expect_error(raw_client.get_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config(fn, "eventinvokealias")),
                 FunctionName=fn, Qualifier="eventinvokealias")
    expect_error(raw_client.update_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config(fn, "eventinvokealias")),
                 FunctionName=fn, Qualifier="eventinvokealias", MaximumRetryAttempts=1)
    expect_error(raw_client.update_function_event_invoke_config,
                 (404, "ResourceNotFoundException", no_config(fn)),
                 FunctionName=fn, MaximumRetryAttempts=1)


DESTINATION_RECORDER = make_zip({"index.py": (
    "import json, os, urllib.request\n"
    "def handler(event, context):\n"
    "    req = urllib.request.Request(os.environ['CALLBACK'], data=json.dumps(event).encode(),\n"
    "                                 method='POST')\n"
    "    urllib.request.urlopen(req, timeout=5).read()\n"
    "    return 'recorded'\n")})

SOURCE = make_zip({"index.py": (
    "def handler(event, context):\n"
    "    if event.get('fail'):\n"
    "        raise ValueError('failing on purpose ' + event['token'])\n"
    "    return {'ok': event['token']}\n")})


def test_lambda_destinations_receive_the_invocation_record(lambda_client, callback_server):
    recorder = unique_name("recorder")
    create_function(lambda_client, recorder, zip_bytes=DESTINATION_RECORDER,
                    Environment={"Variables": {"CALLBACK": callback_server.url}})
    source = unique_name("source")
    create_function(lambda_client, source, zip_bytes=SOURCE)
    lambda_client.put_function_event_invoke_config(
        FunctionName=source, MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": arn(recorder)},
                           "OnFailure": {"Destination": arn(recorder)}})

    ok_token, fail_token = unique_name("ok"), unique_name("fail")
    lambda_client.invoke(FunctionName=source, InvocationType="Event",
                         Payload=json.dumps({"token": ok_token}).encode())
    lambda_client.invoke(FunctionName=source, InvocationType="Event",
                         Payload=json.dumps({"token": fail_token, "fail": True}).encode())

    success = callback_server.wait_for(lambda body: ok_token in body, timeout=10)
    assert success is not None, "OnSuccess destination was not invoked"
    record = json.loads(success)
    assert record["version"] == "1.0"
    assert record["requestContext"]["functionArn"] == arn(source, "$LATEST")
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == {"token": ok_token}
    assert record["responseContext"]["statusCode"] == 200
    assert record["responsePayload"] == {"ok": ok_token}

    failure = callback_server.wait_for(lambda body: fail_token in body, timeout=10)
    assert failure is not None, "OnFailure destination was not invoked"
    record = json.loads(failure)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == {"token": fail_token, "fail": True}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "ValueError"
