"""Runtime management and recursive-loop configs as AWS Lambda answers them:
Get/PutRuntimeManagementConfig (Auto by default, Manual pinned to a RuntimeVersionArn,
FunctionUpdate; per version; validation) and Get/PutFunctionRecursionConfig (Terminate by
default, Allow, enum validation, unqualified names only). Messages are those recorded against
real AWS where recordings exist (recursion), else the API model's constraint messages."""

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    unique_name,
)

UNQUALIFIED_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)")


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def body(resp):
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs


@pytest.fixture(scope="module")
def fn(lambda_client):
    name = unique_name("rtm")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    return name


# --------------------------------------------------------------------------------------------
# Runtime management
# --------------------------------------------------------------------------------------------

def test_runtime_management_defaults_to_auto(lambda_client, fn):
    resp = lambda_client.get_runtime_management_config(FunctionName=fn)
    assert status(resp) == 200
    assert body(resp) == {"UpdateRuntimeOn": "Auto", "FunctionArn": arn(fn)}
    on_version = lambda_client.get_runtime_management_config(FunctionName=fn, Qualifier="1")
    assert body(on_version) == {"UpdateRuntimeOn": "Auto", "FunctionArn": arn(fn, "1")}


def test_runtime_management_manual_and_back(lambda_client):
    name = unique_name("rtmmanual")
    create_function(lambda_client, name)
    runtime_version = lambda_client.get_function_configuration(
        FunctionName=name)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert runtime_version.startswith(f"arn:aws:lambda:{REGION}::runtime:")

    put = lambda_client.put_runtime_management_config(
        FunctionName=name, UpdateRuntimeOn="Manual", RuntimeVersionArn=runtime_version)
    assert status(put) == 200
    assert body(put) == {"UpdateRuntimeOn": "Manual", "FunctionArn": arn(name),
                         "RuntimeVersionArn": runtime_version}
    assert body(lambda_client.get_runtime_management_config(FunctionName=name)) == body(put)

    on_update = lambda_client.put_runtime_management_config(FunctionName=name,
                                                            UpdateRuntimeOn="FunctionUpdate")
    assert body(on_update) == {"UpdateRuntimeOn": "FunctionUpdate", "FunctionArn": arn(name)}
    assert lambda_client.get_runtime_management_config(
        FunctionName=name)["UpdateRuntimeOn"] == "FunctionUpdate"
    auto = lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Auto")
    assert body(auto) == {"UpdateRuntimeOn": "Auto", "FunctionArn": arn(name)}
    # The function still runs normally.
    out = lambda_client.invoke(FunctionName=name, Payload=b'"still here"')
    assert out["Payload"].read() == b'"still here"'


def test_runtime_management_validation(raw_client, fn):
    runtime_version = raw_client.get_function_configuration(
        FunctionName=fn)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    expect_error(raw_client.put_runtime_management_config,
                 (400, "InvalidParameterValueException",
                  "RuntimeVersionArn must be specified when UpdateRuntimeOn is Manual."),
                 FunctionName=fn, UpdateRuntimeOn="Manual")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw_client.put_runtime_management_config(FunctionName=fn, UpdateRuntimeOn="Auto",
                                                 RuntimeVersionArn=runtime_version)
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidParameterValueException")
    expect_error(raw_client.put_runtime_management_config,
                 (400, "ValidationException",
                  "1 validation error detected: Value 'Sometimes' at 'updateRuntimeOn' failed to "
                  "satisfy constraint: Member must satisfy enum value set: [Auto, Manual, "
                  "FunctionUpdate]"),
                 FunctionName=fn, UpdateRuntimeOn="Sometimes")
    # Nothing of the refused calls stuck.
    assert raw_client.get_runtime_management_config(FunctionName=fn)["UpdateRuntimeOn"] == "Auto"


def test_runtime_management_not_found(lambda_client, fn):
    expect_error(lambda_client.get_runtime_management_config,
                 (404, "ResourceNotFoundException",
                  f"Function not found: {arn('doesnotexist')}"),
                 FunctionName="doesnotexist")
    expect_error(lambda_client.put_runtime_management_config,
                 (404, "ResourceNotFoundException",
                  f"Function not found: {arn('doesnotexist')}"),
                 FunctionName="doesnotexist", UpdateRuntimeOn="Auto")
    expect_error(lambda_client.get_runtime_management_config,
                 (404, "ResourceNotFoundException", f"Function not found: {arn(fn, '9')}"),
                 FunctionName=fn, Qualifier="9")


# --------------------------------------------------------------------------------------------
# Recursive loop detection config
# --------------------------------------------------------------------------------------------

def test_recursion_defaults_to_terminate(lambda_client, fn):
    resp = lambda_client.get_function_recursion_config(FunctionName=fn)
    assert status(resp) == 200
    assert body(resp) == {"RecursiveLoop": "Terminate"}


def test_recursion_allow_and_back(lambda_client):
    name = unique_name("recursion")
    create_function(lambda_client, name)
    put = lambda_client.put_function_recursion_config(FunctionName=name, RecursiveLoop="Allow")
    assert status(put) == 200
    assert body(put) == {"RecursiveLoop": "Allow"}
    assert body(lambda_client.get_function_recursion_config(
        FunctionName=arn(name))) == {"RecursiveLoop": "Allow"}
    back = lambda_client.put_function_recursion_config(FunctionName=name,
                                                       RecursiveLoop="Terminate")
    assert body(back) == {"RecursiveLoop": "Terminate"}
    assert lambda_client.get_function_recursion_config(
        FunctionName=name)["RecursiveLoop"] == "Terminate"


def test_recursion_config_is_dropped_with_the_function(lambda_client):
    name = unique_name("recdel")
    create_function(lambda_client, name)
    lambda_client.put_function_recursion_config(FunctionName=name, RecursiveLoop="Allow")
    lambda_client.delete_function(FunctionName=name)
    create_function(lambda_client, name)
    assert lambda_client.get_function_recursion_config(
        FunctionName=name)["RecursiveLoop"] == "Terminate"


def test_recursion_validation_and_not_found(raw_client, fn):
    expect_error(raw_client.put_function_recursion_config,
                 (400, "ValidationException",
                  "1 validation error detected: Value 'InvalidValue' at 'recursiveLoop' failed "
                  "to satisfy constraint: Member must satisfy enum value set: [Terminate, "
                  "Allow]"),
                 FunctionName=fn, RecursiveLoop="InvalidValue")
    expect_error(raw_client.get_function_recursion_config,
                 (404, "ResourceNotFoundException", f"Function not found: {arn('doesnotexist')}"),
                 FunctionName="doesnotexist")
    expect_error(raw_client.put_function_recursion_config,
                 (404, "ResourceNotFoundException", f"Function not found: {arn('doesnotexist')}"),
                 FunctionName="doesnotexist", RecursiveLoop="Allow")
    expect_error(raw_client.get_function_recursion_config,
                 (400, "ValidationException",
                  f"1 validation error detected: Value '{fn}:1' at 'functionName' failed to "
                  f"satisfy constraint: Member must satisfy regular expression pattern: "
                  f"{UNQUALIFIED_PATTERN}"),
                 FunctionName=f"{fn}:1")
