"""Code signing configs as AWS Lambda answers them: Create / Get / Update / List / Delete of
CodeSigningConfig, binding to functions (Put / Get / DeleteFunctionCodeSigningConfig, the
CodeSigningConfigArn at CreateFunction), ListFunctionsByCodeSigningConfig, and every not-found
message. Messages are those recorded against real AWS (test_lambda_api.snapshot.json)."""

import re

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    unique_name,
)

CSC_ID = re.compile(r"^csc-[a-z0-9]{17}$")
LAST_MODIFIED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+0000)$")
PROFILE = f"arn:aws:signer:{REGION}:{DEFAULT_ACCOUNT}:/signing-profiles/test"


def arn(name):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


def csc_not_found(csc_arn):
    return (404, "ResourceNotFoundException",
            f"The Lambda code signing configuration {csc_arn} can not be found.")


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs


def new_csc(client, **kwargs):
    params = {"Description": "Testing CodeSigning Config",
              "AllowedPublishers": {"SigningProfileVersionArns": [PROFILE]},
              "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": "Enforce"}}
    params.update(kwargs)
    return client.create_code_signing_config(**params)


@pytest.fixture(scope="module")
def csc(lambda_client):
    return new_csc(lambda_client)["CodeSigningConfig"]


def test_create_returns_201_with_the_config(lambda_client):
    resp = new_csc(lambda_client)
    assert status(resp) == 201
    config = resp["CodeSigningConfig"]
    assert CSC_ID.match(config["CodeSigningConfigId"]), config["CodeSigningConfigId"]
    assert config["CodeSigningConfigArn"] == (
        f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:code-signing-config:"
        f"{config['CodeSigningConfigId']}")
    assert config["Description"] == "Testing CodeSigning Config"
    assert config["AllowedPublishers"] == {"SigningProfileVersionArns": [PROFILE]}
    assert config["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Enforce"}
    assert LAST_MODIFIED.match(config["LastModified"]), config["LastModified"]
    lambda_client.delete_code_signing_config(CodeSigningConfigArn=config["CodeSigningConfigArn"])


def test_default_policy_is_warn(lambda_client):
    config = lambda_client.create_code_signing_config(
        AllowedPublishers={"SigningProfileVersionArns": [PROFILE]})["CodeSigningConfig"]
    try:
        assert config["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}
        assert config.get("Description", "") == ""
    finally:
        lambda_client.delete_code_signing_config(
            CodeSigningConfigArn=config["CodeSigningConfigArn"])


def test_update_get_and_list(lambda_client):
    config = new_csc(lambda_client)["CodeSigningConfig"]
    csc_arn = config["CodeSigningConfigArn"]
    try:
        updated = lambda_client.update_code_signing_config(
            CodeSigningConfigArn=csc_arn,
            CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Warn"})
        assert status(updated) == 200
        new = updated["CodeSigningConfig"]
        assert new["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}
        assert new["Description"] == config["Description"]
        assert new["AllowedPublishers"] == config["AllowedPublishers"]

        got = lambda_client.get_code_signing_config(CodeSigningConfigArn=csc_arn)
        assert status(got) == 200
        assert got["CodeSigningConfig"] == new

        # An update with nothing to change answers the config as it is.
        same = lambda_client.update_code_signing_config(CodeSigningConfigArn=csc_arn)
        assert same["CodeSigningConfig"]["CodeSigningPolicies"] == new["CodeSigningPolicies"]

        described = lambda_client.update_code_signing_config(
            CodeSigningConfigArn=csc_arn, Description="new-description")
        assert described["CodeSigningConfig"]["Description"] == "new-description"

        listed = lambda_client.list_code_signing_configs()["CodeSigningConfigs"]
        mine = [c for c in listed if c["CodeSigningConfigArn"] == csc_arn]
        assert len(mine) == 1
        assert mine[0]["Description"] == "new-description"
        paginator = lambda_client.get_paginator("list_code_signing_configs")
        all_arns = [c["CodeSigningConfigArn"] for page in paginator.paginate(
            PaginationConfig={"PageSize": 1}) for c in page["CodeSigningConfigs"]]
        assert csc_arn in all_arns
        assert len(all_arns) == len(set(all_arns)) == len(listed)
    finally:
        lambda_client.delete_code_signing_config(CodeSigningConfigArn=csc_arn)


def test_binding_a_function(lambda_client, csc):
    name = unique_name("signed")
    create_function(lambda_client, name)
    csc_arn = csc["CodeSigningConfigArn"]
    # Without a binding: 200 with no fields.
    empty = lambda_client.get_function_code_signing_config(FunctionName=name)
    assert status(empty) == 200 and empty.keys() == {"ResponseMetadata"}
    assert status(lambda_client.delete_function_code_signing_config(FunctionName=name)) == 204

    put = lambda_client.put_function_code_signing_config(CodeSigningConfigArn=csc_arn,
                                                         FunctionName=name)
    assert status(put) == 200
    assert (put["CodeSigningConfigArn"], put["FunctionName"]) == (csc_arn, name)
    got = lambda_client.get_function_code_signing_config(FunctionName=name)
    assert (got["CodeSigningConfigArn"], got["FunctionName"]) == (csc_arn, name)
    by_csc = lambda_client.list_functions_by_code_signing_config(CodeSigningConfigArn=csc_arn)
    assert arn(name) in by_csc["FunctionArns"]

    # A config in use cannot be deleted.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.delete_code_signing_config(CodeSigningConfigArn=csc_arn)
    err = client_error(e)
    assert (err["status"], err["code"]) == (409, "ResourceConflictException")

    deleted = lambda_client.delete_function_code_signing_config(FunctionName=name)
    assert status(deleted) == 204
    assert lambda_client.get_function_code_signing_config(
        FunctionName=name).keys() == {"ResponseMetadata"}
    assert arn(name) not in lambda_client.list_functions_by_code_signing_config(
        CodeSigningConfigArn=csc_arn)["FunctionArns"]


def test_binding_at_create_function_and_cascade_on_delete(lambda_client):
    config = new_csc(lambda_client,
                     CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Warn"})
    csc_arn = config["CodeSigningConfig"]["CodeSigningConfigArn"]
    name = unique_name("signedcreate")
    create_function(lambda_client, name, CodeSigningConfigArn=csc_arn)
    assert lambda_client.get_function_code_signing_config(
        FunctionName=name)["CodeSigningConfigArn"] == csc_arn
    assert lambda_client.list_functions_by_code_signing_config(
        CodeSigningConfigArn=csc_arn)["FunctionArns"] == [arn(name)]
    lambda_client.delete_function(FunctionName=name)
    assert lambda_client.list_functions_by_code_signing_config(
        CodeSigningConfigArn=csc_arn)["FunctionArns"] == []
    assert status(lambda_client.delete_code_signing_config(CodeSigningConfigArn=csc_arn)) == 204
    expect_error(lambda_client.get_code_signing_config, csc_not_found(csc_arn),
                 CodeSigningConfigArn=csc_arn)


def test_not_found_errors(lambda_client, csc):
    name = unique_name("cscfn")
    create_function(lambda_client, name)
    csc_arn = csc["CodeSigningConfigArn"]
    invalid = f"{csc_arn[:-1]}{'x' if csc_arn[-1] != 'x' else 'y'}"
    missing_fn = "csc-test-doesnotexist"
    fn_not_found = (404, "ResourceNotFoundException", f"Function not found: {arn(missing_fn)}")
    csc_missing = (404, "CodeSigningConfigNotFoundException",
                   "The code signing configuration cannot be found. Check that the provided "
                   f"configuration is not deleted: {invalid}.")

    expect_error(lambda_client.delete_code_signing_config, csc_not_found(invalid),
                 CodeSigningConfigArn=invalid)
    expect_error(lambda_client.delete_function_code_signing_config, fn_not_found,
                 FunctionName=missing_fn)
    expect_error(lambda_client.put_function_code_signing_config, fn_not_found,
                 FunctionName=missing_fn, CodeSigningConfigArn=csc_arn)
    expect_error(lambda_client.put_function_code_signing_config, csc_missing,
                 FunctionName=name, CodeSigningConfigArn=invalid)
    expect_error(lambda_client.put_function_code_signing_config, csc_missing,
                 FunctionName=missing_fn, CodeSigningConfigArn=invalid)
    expect_error(lambda_client.update_code_signing_config, csc_not_found(invalid),
                 CodeSigningConfigArn=invalid, Description="new-description")
    expect_error(lambda_client.update_code_signing_config, csc_not_found(invalid),
                 CodeSigningConfigArn=invalid)
    expect_error(lambda_client.get_code_signing_config, csc_not_found(invalid),
                 CodeSigningConfigArn=invalid)
    expect_error(lambda_client.get_function_code_signing_config, fn_not_found,
                 FunctionName=missing_fn)
    expect_error(lambda_client.list_functions_by_code_signing_config, csc_not_found(invalid),
                 CodeSigningConfigArn=invalid)
    # The failed binding left nothing behind.
    assert arn(name) not in lambda_client.list_functions_by_code_signing_config(
        CodeSigningConfigArn=csc_arn)["FunctionArns"]


def test_missing_csc_at_create_function(raw_client, csc):
    invalid = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:code-signing-config:csc-" + "0" * 17
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_function(raw_client, unique_name("badcsc"), wait=False,
                        CodeSigningConfigArn=invalid)
    err = client_error(e)
    assert (err["status"], err["code"]) == (404, "CodeSigningConfigNotFoundException")
    assert err["message"] == ("The code signing configuration cannot be found. Check that the "
                              f"provided configuration is not deleted: {invalid}.")


def test_code_signing_configs_are_per_account(make_client, csc):
    other = make_client(account="210987654321")
    arns = [c["CodeSigningConfigArn"] for c in other.list_code_signing_configs()[
        "CodeSigningConfigs"]]
    assert csc["CodeSigningConfigArn"] not in arns
