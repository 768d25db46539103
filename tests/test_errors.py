"""Every error path a user meets, with AWS's exact status, error code and message (recorded
against real AWS Lambda). Client-side validation is off where botocore would otherwise refuse to
send the request, so that the server's answer is what is tested."""

import json
import urllib.error
import urllib.request

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    ROLE,
    client_error,
    create_function,
    invoke_json,
    make_zip,
    not_found_message,
    python_zip,
    request_id,
    unique_name,
)

RUNTIME_ENUM = (
    "[nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, "
    "java25, python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9, "
    "java17, nodejs16.x, dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2, java8.al2]"
)
ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
# The patterns AWS quotes in its messages (recorded), which carry `(eusc-)?` where botocore's
# model does not.
CREATE_FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
NAMESPACED_FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)


def expect_error(call, status, code, message=None, type_=None, **kwargs):
    """Runs `call(**kwargs)`, which must fail with exactly this status/code (and message)."""
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"]) == (status, code), err["response"]
    if message is not None:
        assert err["message"] == message
    if type_ is not None:
        assert err["type"] == type_, err["response"]
    return err


# ---- not found ------------------------------------------------------------------------------

def test_get_unknown_function_is_404_with_its_arn(lambda_client):
    name = unique_name("missing")
    expect_error(lambda_client.get_function, 404, "ResourceNotFoundException",
                 not_found_message(name), "User", FunctionName=name)
    expect_error(lambda_client.get_function_configuration, 404, "ResourceNotFoundException",
                 not_found_message(name), "User", FunctionName=name)


def test_get_unknown_function_with_qualifier_names_the_qualified_arn(lambda_client):
    name = unique_name("missing")
    expect_error(lambda_client.get_function, 404, "ResourceNotFoundException",
                 not_found_message(name, qualifier="$LATEST"), FunctionName=f"{name}:$LATEST")


def test_invoke_unknown_function_is_404_naming_latest(lambda_client):
    # AWS names the version it looked for in Invoke's message.
    name = unique_name("missing")
    expect_error(lambda_client.invoke, 404, "ResourceNotFoundException",
                 not_found_message(name, qualifier="$LATEST"), "User", FunctionName=name)


def test_invoke_unknown_version_of_existing_function_is_404(lambda_client, python_fn):
    expect_error(lambda_client.invoke, 404, "ResourceNotFoundException",
                 not_found_message(python_fn, qualifier="42"),
                 FunctionName=python_fn, Qualifier="42")


def test_delete_unknown_function_is_404(lambda_client):
    name = unique_name("missing")
    expect_error(lambda_client.delete_function, 404, "ResourceNotFoundException",
                 not_found_message(name), "User", FunctionName=name)


def test_update_unknown_function_is_404(lambda_client):
    name = unique_name("missing")
    expect_error(lambda_client.update_function_configuration, 404, "ResourceNotFoundException",
                 not_found_message(name), FunctionName=name, Timeout=5)
    expect_error(lambda_client.update_function_code, 404, "ResourceNotFoundException",
                 not_found_message(name), FunctionName=name, ZipFile=python_zip())


# ---- conflicts and preconditions --------------------------------------------------------------

def test_create_existing_function_is_409(lambda_client, python_fn):
    expect_error(lambda_client.create_function, 409, "ResourceConflictException",
                 f"Function already exist: {python_fn}", "User",
                 FunctionName=python_fn, Runtime="python3.11", Handler="index.handler",
                 Role=ROLE, Code={"ZipFile": python_zip()})


# ---- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,member,constraint", [
    ("Timeout", 0, "timeout", "Member must have value greater than or equal to 1"),
    ("Timeout", 901, "timeout", "Member must have value less than or equal to 900"),
    ("MemorySize", 127, "memorySize", "Member must have value greater than or equal to 128"),
    ("MemorySize", 10241, "memorySize", "Member must have value less than or equal to 10240"),
])
def test_create_with_out_of_range_number_is_validation_exception(
        raw_client, field, value, member, constraint):
    expect_error(
        raw_client.create_function, 400, "ValidationException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}",
        FunctionName=unique_name("invalid"), Runtime="python3.11", Handler="index.handler",
        Role=ROLE, Code={"ZipFile": python_zip()}, **{field: value})


def test_update_configuration_with_timeout_zero_is_validation_exception(raw_client, python_fn):
    expect_error(
        raw_client.update_function_configuration, 400, "ValidationException",
        "1 validation error detected: Value '0' at 'timeout' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
        FunctionName=python_fn, Timeout=0)


def test_create_with_zip_that_does_not_unzip_is_invalid_parameter(lambda_client):
    name = unique_name("badzip")
    expect_error(lambda_client.create_function, 400, "InvalidParameterValueException",
                 "Could not unzip uploaded file. Please check your file, then try to upload again.",
                 "User",
                 FunctionName=name, Runtime="python3.11", Handler="index.handler", Role=ROLE,
                 Code={"ZipFile": b"this is not a zip file at all"})
    # Nothing was created.
    expect_error(lambda_client.get_function, 404, "ResourceNotFoundException",
                 not_found_message(name), FunctionName=name)


def test_update_code_with_zip_that_does_not_unzip_is_invalid_parameter(lambda_client, python_fn):
    before = lambda_client.get_function_configuration(FunctionName=python_fn)
    expect_error(lambda_client.update_function_code, 400, "InvalidParameterValueException",
                 "Could not unzip uploaded file. Please check your file, then try to upload again.",
                 FunctionName=python_fn, ZipFile=b"PK\x03\x04 truncated")
    after = lambda_client.get_function_configuration(FunctionName=python_fn)
    assert after["CodeSha256"] == before["CodeSha256"]


def test_create_with_invalid_role_is_validation_exception(lambda_client):
    expect_error(
        lambda_client.create_function, 400, "ValidationException",
        f"1 validation error detected: Value 'r1' at 'role' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {ROLE_PATTERN}",
        FunctionName=unique_name("role"), Runtime="python3.11", Handler="index.handler",
        Role="r1", Code={"ZipFile": python_zip()})


@pytest.mark.parametrize("runtime", ["non-existent-runtime", "PYTHON3.9"])
def test_create_with_unknown_runtime_is_invalid_parameter(lambda_client, runtime):
    expect_error(
        lambda_client.create_function, 400, "InvalidParameterValueException",
        f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum "
        f"value set: {RUNTIME_ENUM} or be a valid ARN",
        "User",
        FunctionName=unique_name("runtime"), Runtime=runtime, Handler="index.handler",
        Role=ROLE, Code={"ZipFile": python_zip()})


def test_create_with_two_architectures_is_validation_exception(lambda_client):
    expect_error(
        lambda_client.create_function, 400, "ValidationException",
        "1 validation error detected: Value '[x86_64, arm64]' at 'architectures' failed to "
        "satisfy constraint: Member must have length less than or equal to 1",
        FunctionName=unique_name("arch"), Runtime="python3.11", Handler="index.handler",
        Role=ROLE, Code={"ZipFile": python_zip()}, Architectures=["x86_64", "arm64"])


def test_create_with_a_65_character_name_is_invalid_parameter(raw_client):
    name = "a" * 65
    expect_error(
        raw_client.create_function, 400, "InvalidParameterValueException",
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        f"constraint: Member must have length less than or equal to 64",
        FunctionName=name, Runtime="python3.11", Handler="index.handler", Role=ROLE,
        Code={"ZipFile": python_zip()})


def test_create_with_malformed_function_name_is_validation_exception(lambda_client):
    # CreateFunction's FunctionName pattern, as AWS states it (recorded).
    expect_error(
        lambda_client.create_function, 400, "ValidationException",
        f"1 validation error detected: Value 'invalid:function:name' at 'functionName' failed "
        f"to satisfy constraint: Member must satisfy regular expression pattern: "
        f"{CREATE_FUNCTION_NAME_PATTERN}",
        FunctionName="invalid:function:name", Runtime="python3.12", Handler="index.handler",
        Role=ROLE, Code={"ZipFile": python_zip()})


def test_invoke_with_malformed_function_name_is_validation_exception(lambda_client):
    # Invoke's (namespaced) FunctionName pattern, as AWS states it (recorded).
    name = "arn:aws:lambda:us-east-1:123400000000@function:myfn"
    expect_error(
        lambda_client.invoke, 400, "ValidationException",
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: "
        f"{NAMESPACED_FUNCTION_NAME_PATTERN}",
        FunctionName=name, Payload=b"{}")


def test_qualifier_in_name_and_parameter_must_agree(lambda_client, python_fn):
    expect_error(lambda_client.get_function, 400, "InvalidParameterValueException",
                 "The derived qualifier from the function name does not match the specified "
                 "qualifier.", "User",
                 FunctionName=f"{python_fn}:$LATEST", Qualifier="1")
    expect_error(lambda_client.invoke, 400, "InvalidParameterValueException",
                 "The derived qualifier from the function name does not match the specified "
                 "qualifier.",
                 FunctionName=f"{python_fn}:$LATEST", Qualifier="1")


# ---- invoke request errors --------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"this is not json", b"{\"unterminated\": ", b"\x87\x99 binary"])
def test_invoke_body_that_is_not_json_is_invalid_request_content(lambda_client, python_fn, body):
    err = expect_error(lambda_client.invoke, 400, "InvalidRequestContentException", None, "User",
                       FunctionName=python_fn, Payload=body)
    assert err["message"].startswith(
        "Could not parse request body into json: Could not parse payload into json: "), err


JACKSON_SOURCE = "\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled);"


@pytest.mark.parametrize("body,message", [
    # AWS's recorded answers (LocalStack's test_lambda_invoke_payload_encoding_error): what the
    # AWS CLI v2 sends for --payload '{...}' without --cli-binary-format raw-in-base64-out.
    (b"n\x87r\x9e\xe9\xb5\xd7I\xee\x9bmt",
     f"Invalid UTF-8 start byte 0x87{JACKSON_SOURCE} line: 1, column: 3]"),
    (b"\x99\xeb,j\x07\xa1zYh",
     "Unexpected character ((CTRL-CHAR, code 153)): expected a valid value (JSON String, Number, "
     f"Array, Object or token 'null', 'true' or 'false'){JACKSON_SOURCE} line: 1, column: 1]"),
    (b"hello",
     "Unrecognized token 'hello': was expecting (JSON String, Number, Array, Object or token "
     f"'null', 'true' or 'false'){JACKSON_SOURCE} line: 1, column: 6]"),
])
def test_invoke_body_that_is_not_json_gets_jacksons_message(lambda_client, python_fn, body,
                                                             message):
    expect_error(lambda_client.invoke, 400, "InvalidRequestContentException",
                 "Could not parse request body into json: Could not parse payload into json: "
                 + message, "User", FunctionName=python_fn, Payload=body)


def test_a_large_payload_broken_at_its_end_is_invalid_request_content(lambda_client, python_fn):
    # ~5 MB arrives in many chunks; the mistake is in the last of them (an object left open).
    body = b'{"a": "' + b"x" * 5_000_000 + b'", "b": [1, 2'
    err = expect_error(lambda_client.invoke, 400, "InvalidRequestContentException", None, "User",
                       FunctionName=python_fn, Payload=body)
    assert err["message"].startswith(
        "Could not parse request body into json: Could not parse payload into json: "), err
    # The same payload closed is an event.
    resp = lambda_client.invoke(FunctionName=python_fn, Payload=body + b"]}")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp


def test_invoke_body_over_6mb_is_413(lambda_client, python_fn):
    # AWS answers an oversized synchronous invoke at its front door with this code and message
    # (seen from every AWS SDK: "RequestEntityTooLargeException: Request must be smaller than
    # 6291456 bytes for the InvokeFunction operation").
    payload = json.dumps({"data": "x" * (6 * 1024 * 1024 + 1024)}).encode()
    expect_error(lambda_client.invoke, 413, "RequestEntityTooLargeException",
                 "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
                 FunctionName=python_fn, Payload=payload)


# ---- function errors are not API errors -------------------------------------------------------

def test_function_error_is_200_with_function_error_header(lambda_client, python_fn):
    resp, payload = invoke_json(lambda_client, python_fn, {"action": "error", "message": "bad"})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorMessage"] == "bad"
    assert payload["errorType"] == "Exception"
    assert isinstance(payload["stackTrace"], list)


def test_runtime_crash_mid_invoke_is_runtime_exit_error(lambda_client):
    from conftest import provided_zip

    name = unique_name("crash")
    create_function(lambda_client, name, runtime="provided.al2023", handler="function.handler",
                    zip_bytes=provided_zip("python"))
    resp, payload = invoke_json(lambda_client, name, {"action": "exit", "code": 1})
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Runtime exited with error: "
                        f"exit status 1",
    }
    resp, payload = invoke_json(lambda_client, name, {"action": "exit", "code": 0})
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Runtime exited without "
                        f"providing a reason",
    }
    # The next invoke gets a fresh runtime.
    resp, payload = invoke_json(lambda_client, name, {"fine": True})
    assert "FunctionError" not in resp and payload["event"] == {"fine": True}


def test_an_exec_wrapper_that_does_not_exist_is_runtime_exit_error_127(lambda_client):
    # AWS's bootstrap script runs the wrapper: bash's "not found" status (recorded by
    # LocalStack's test_lambda_runtime_wrapper_not_found).
    name = unique_name("nowrapper")
    create_function(lambda_client, name,
                    Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/idontexist.sh"}})
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id(resp)} Error: Runtime exited with error: "
                        f"exit status 127",
    }


@pytest.mark.parametrize("runtime,with_request_id", [("python3.8", False), ("python3.9", True)])
def test_python_error_payloads_carry_the_request_id_from_python3_9_on(lambda_client, runtime,
                                                                        with_request_id):
    # python3.8's runtime (an older awslambdaric) sends no requestId (recorded by LocalStack's
    # test_uncaught_exception_invoke[python3.8]).
    name = unique_name("p38err")
    create_function(lambda_client, name, runtime=runtime)
    resp, payload = invoke_json(lambda_client, name, {"action": "error", "message": "bad"})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorMessage"] == "bad"
    assert ("requestId" in payload) == with_request_id, payload
    if with_request_id:
        assert payload["requestId"] == request_id(resp)


# ---- requests without a signature --------------------------------------------------------------

def test_unsigned_request_is_403(server):
    req = urllib.request.Request(f"{server.endpoint}/2015-03-31/functions/", method="GET")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    body = json.loads(e.value.read() or b"{}")
    assert body, "403 without an error body"
