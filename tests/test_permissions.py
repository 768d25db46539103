"""Resource-based policies of functions as AWS Lambda answers them: AddPermission /
RemovePermission / GetPolicy on a function, a version and an alias; the statement JSON AWS builds
from each kind of principal and condition; duplicate statement ids (409); missing functions,
qualifiers, statements and policies (404); RevisionId preconditions (412). Messages are those
recorded against real AWS (test_lambda_api.snapshot.json)."""

import json

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    unique_name,
)

NOT_FOUND = "The resource you requested does not exist."
PRECONDITION_PREFIX = "The Revision Id provided does not match the latest Revision Id."
BUCKET_ARN = "arn:aws:s3:::test-bucket"


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def s3_statement(sid, resource, source_arn=BUCKET_ARN):
    statement = {
        "Sid": sid, "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": resource,
    }
    if source_arn:
        statement["Condition"] = {"ArnLike": {"AWS:SourceArn": source_arn}}
    return statement


def add_s3(client, name, sid, **kwargs):
    return client.add_permission(FunctionName=name, StatementId=sid,
                                 Action="lambda:InvokeFunction", Principal="s3.amazonaws.com",
                                 SourceArn=BUCKET_ARN, **kwargs)


def policy_of(client, name, **kwargs):
    resp = client.get_policy(FunctionName=name, **kwargs)
    return json.loads(resp["Policy"]), resp["RevisionId"]


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs
    return err


@pytest.fixture(scope="module")
def fn(lambda_client):
    """A function with version 1 and alias `live` → 1 (for qualifier tests)."""
    name = unique_name("perm")
    create_function(lambda_client, name)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return name


def test_add_permission_returns_201_with_the_statement(lambda_client):
    name = unique_name("addperm")
    create_function(lambda_client, name)
    resp = add_s3(lambda_client, name, "s3")
    assert status(resp) == 201
    statement = json.loads(resp["Statement"])
    assert statement == s3_statement("s3", arn(name))

    policy, revision = policy_of(lambda_client, name)
    assert policy == {"Version": "2012-10-17", "Id": "default", "Statement": [statement]}
    # The policy's RevisionId is the function's.
    assert revision == lambda_client.get_function(FunctionName=name)["Configuration"]["RevisionId"]


def test_policy_keeps_statements_in_order_and_remove_updates_it(lambda_client):
    name = unique_name("multi")
    create_function(lambda_client, name)
    first = lambda_client.add_permission(FunctionName=name, StatementId="s3",
                                         Action="lambda:InvokeFunction",
                                         Principal="s3.amazonaws.com")
    assert json.loads(first["Statement"]) == s3_statement("s3", arn(name), source_arn=None)
    lambda_client.add_permission(FunctionName=name, StatementId="sqs",
                                 Action="lambda:InvokeFunction", Principal="sqs.amazonaws.com",
                                 SourceArn=BUCKET_ARN)
    policy, rev_two = policy_of(lambda_client, name)
    assert [s["Sid"] for s in policy["Statement"]] == ["s3", "sqs"]
    assert policy["Statement"][1]["Principal"] == {"Service": "sqs.amazonaws.com"}

    expect_error(lambda_client.remove_permission,
                 (404, "ResourceNotFoundException",
                  "Statement non-existent is not found in resource policy."),
                 FunctionName=name, StatementId="non-existent")

    removed = lambda_client.remove_permission(FunctionName=name, StatementId="sqs")
    assert status(removed) == 204
    policy, rev_one = policy_of(lambda_client, name)
    assert [s["Sid"] for s in policy["Statement"]] == ["s3"]
    assert rev_one != rev_two

    lambda_client.remove_permission(FunctionName=name, StatementId="s3", RevisionId=rev_one)
    # No statements left: there is no policy at all.
    expect_error(lambda_client.get_policy, (404, "ResourceNotFoundException", NOT_FOUND),
                 FunctionName=name)
    expect_error(lambda_client.remove_permission,
                 (404, "ResourceNotFoundException",
                  "No policy is associated with the given resource."),
                 FunctionName=name, StatementId="s3")


@pytest.mark.parametrize("kwargs, expected", [
    ({"Principal": "*", "SourceAccount": DEFAULT_ACCOUNT},
     {"Principal": "*", "Condition": {"StringEquals": {"AWS:SourceAccount": DEFAULT_ACCOUNT}}}),
    ({"Principal": "lambda.amazonaws.com", "SourceAccount": DEFAULT_ACCOUNT},
     {"Principal": {"Service": "lambda.amazonaws.com"},
      "Condition": {"StringEquals": {"AWS:SourceAccount": DEFAULT_ACCOUNT}}}),
    ({"Principal": "111122223333"},
     {"Principal": {"AWS": "arn:aws:iam::111122223333:root"}}),
    ({"Principal": "arn:aws:iam::111122223333:user/alice", "SourceAccount": DEFAULT_ACCOUNT},
     {"Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
      "Condition": {"StringEquals": {"AWS:SourceAccount": DEFAULT_ACCOUNT}}}),
    ({"Principal": "*", "EventSourceToken": "amzn1.ask.skill.xxxxxxxxx-xxxx"},
     {"Principal": "*",
      "Condition": {"StringEquals": {"lambda:EventSourceToken": "amzn1.ask.skill.xxxxxxxxx-xxxx"}}}),
], ids=["wildcard", "service", "account", "user-arn", "alexa"])
def test_statement_shape_per_principal(lambda_client, fn, kwargs, expected):
    sid = unique_name("sid")
    resp = lambda_client.add_permission(FunctionName=fn, StatementId=sid,
                                        Action="lambda:InvokeFunction", **kwargs)
    try:
        statement = json.loads(resp["Statement"])
        assert statement == {"Sid": sid, "Effect": "Allow", "Action": "lambda:InvokeFunction",
                             "Resource": arn(fn), **expected}
    finally:
        lambda_client.remove_permission(FunctionName=fn, StatementId=sid)


def test_function_url_permission_carries_all_conditions(lambda_client, fn):
    resp = lambda_client.add_permission(
        FunctionName=fn, StatementId="urlPermission", Action="lambda:InvokeFunctionUrl",
        Principal="*", SourceArn=BUCKET_ARN, SourceAccount=DEFAULT_ACCOUNT,
        PrincipalOrgID="o-1234567890", FunctionUrlAuthType="NONE")
    try:
        assert json.loads(resp["Statement"]) == {
            "Sid": "urlPermission", "Effect": "Allow", "Principal": "*",
            "Action": "lambda:InvokeFunctionUrl", "Resource": arn(fn),
            "Condition": {
                "StringEquals": {"AWS:SourceAccount": DEFAULT_ACCOUNT,
                                 "lambda:FunctionUrlAuthType": "NONE",
                                 "aws:PrincipalOrgID": "o-1234567890"},
                "ArnLike": {"AWS:SourceArn": BUCKET_ARN},
            }}
    finally:
        lambda_client.remove_permission(FunctionName=fn, StatementId="urlPermission")


def test_permissions_per_version_and_alias_are_separate_policies(lambda_client):
    name = unique_name("qualperm")
    create_function(lambda_client, name)
    add_s3(lambda_client, name, "s3")
    version = lambda_client.publish_version(FunctionName=name)["Version"]

    # The unqualified policy stays; the new version has none of its own.
    policy, _ = policy_of(lambda_client, name)
    assert policy["Statement"] == [s3_statement("s3", arn(name))]
    expect_error(lambda_client.get_policy, (404, "ResourceNotFoundException", NOT_FOUND),
                 FunctionName=name, Qualifier=version)

    # The same Sid may be used again on the version (qualifier in the name and as Qualifier).
    add_s3(lambda_client, f"{name}:{version}", "s3", Qualifier=version)
    policy, version_rev = policy_of(lambda_client, name, Qualifier=version)
    assert policy["Statement"] == [s3_statement("s3", arn(name, version))]
    assert version_rev == lambda_client.get_function(
        FunctionName=name, Qualifier=version)["Configuration"]["RevisionId"]

    alias = lambda_client.create_alias(FunctionName=name, Name="permission-alias",
                                       FunctionVersion=version)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        add_s3(lambda_client, name, "s3", Qualifier="permission-alias", RevisionId="wrong")
    err = client_error(e)
    assert (err["status"], err["code"]) == (412, "PreconditionFailedException")
    assert err["message"].startswith(PRECONDITION_PREFIX)

    add_s3(lambda_client, f"{name}:permission-alias", "s3", Qualifier="permission-alias",
           RevisionId=alias["RevisionId"])
    policy, _ = policy_of(lambda_client, name, Qualifier="permission-alias")
    assert policy["Statement"] == [s3_statement("s3", arn(name, "permission-alias"))]
    by_arn, _ = policy_of(lambda_client, arn(name, "permission-alias"))
    assert by_arn == policy

    # Removing from the alias leaves the function's and the version's policies alone.
    lambda_client.remove_permission(FunctionName=name, StatementId="s3",
                                    Qualifier="permission-alias")
    expect_error(lambda_client.get_policy, (404, "ResourceNotFoundException", NOT_FOUND),
                 FunctionName=name, Qualifier="permission-alias")
    assert policy_of(lambda_client, name)[0]["Statement"] == [s3_statement("s3", arn(name))]
    assert policy_of(lambda_client, name, Qualifier=version)[0]["Statement"] == [
        s3_statement("s3", arn(name, version))]


def test_add_permission_changes_the_revision_and_checks_it(lambda_client):
    name = unique_name("permrev")
    create_function(lambda_client, name)
    before = lambda_client.get_function(FunctionName=name)["Configuration"]["RevisionId"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        add_s3(lambda_client, name, "s3", RevisionId="wrong")
    err = client_error(e)
    assert (err["status"], err["code"]) == (412, "PreconditionFailedException")
    assert err["message"].startswith(PRECONDITION_PREFIX)

    add_s3(lambda_client, name, "s3", RevisionId=before)
    _, after = policy_of(lambda_client, name)
    assert after != before
    assert after == lambda_client.get_function(FunctionName=name)["Configuration"]["RevisionId"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.remove_permission(FunctionName=name, StatementId="s3", RevisionId=before)
    err = client_error(e)
    assert (err["status"], err["code"]) == (412, "PreconditionFailedException")
    assert err["message"].startswith(PRECONDITION_PREFIX)
    # Still there after the refused removal.
    assert [s["Sid"] for s in policy_of(lambda_client, name)[0]["Statement"]] == ["s3"]


def test_duplicate_statement_id_is_409(lambda_client, fn):
    add_s3(lambda_client, fn, "dup")
    try:
        expect_error(add_s3, (409, "ResourceConflictException",
                              "The statement id (dup) provided already exists. Please provide "
                              "a new statement id, or remove the existing statement."),
                     client=lambda_client, name=fn, sid="dup")
    finally:
        lambda_client.remove_permission(FunctionName=fn, StatementId="dup")


def test_permission_validation_errors(raw_client, fn):
    expect_error(raw_client.add_permission,
                 (400, "ValidationException",
                  "1 validation error detected: Value 'example.com' at 'statementId' failed to "
                  "satisfy constraint: Member must satisfy regular expression pattern: "
                  "([a-zA-Z0-9-_]+)"),
                 FunctionName=fn, Action="lambda:InvokeFunction", StatementId="example.com",
                 Principal="s3.amazonaws.com")
    expect_error(raw_client.add_permission,
                 (400, "InvalidParameterValueException",
                  "The derived qualifier from the function name does not match the specified "
                  "qualifier."),
                 FunctionName=f"{fn}:alias-not-42", Action="lambda:InvokeFunction",
                 StatementId="s3", Principal="s3.amazonaws.com", Qualifier="42")
    expect_error(raw_client.add_permission,
                 (400, "InvalidParameterValueException",
                  "We currently do not support adding policies for $LATEST."),
                 FunctionName=f"{fn}:$LATEST", Action="lambda:InvokeFunction",
                 StatementId="s3", Principal="s3.amazonaws.com", Qualifier="$LATEST")
    expect_error(raw_client.add_permission,
                 (400, "InvalidParameterValueException",
                  "The provided principal was invalid. Please check the principal and try "
                  "again."),
                 FunctionName=fn, Action="lambda:InvokeFunction", StatementId="lambda",
                 Principal="invalid.nonaws.com", SourceAccount=DEFAULT_ACCOUNT)
    expect_error(raw_client.add_permission,
                 (400, "ValidationException",
                  "1 validation error detected: Value 'invalid-qualifier-with-?-char' at "
                  "'qualifier' failed to satisfy constraint: Member must satisfy regular "
                  "expression pattern: \\$(LATEST(\\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"),
                 FunctionName=fn, Action="lambda:InvokeFunction", StatementId="s3",
                 Principal="s3.amazonaws.com", Qualifier="invalid-qualifier-with-?-char")


def test_permission_not_found_errors(raw_client, fn):
    expect_error(raw_client.get_policy, (404, "ResourceNotFoundException", NOT_FOUND),
                 FunctionName="doesnotexist")
    expect_error(raw_client.get_policy, (404, "ResourceNotFoundException", NOT_FOUND),
                 FunctionName=fn, Qualifier="77")
    expect_error(add_s3, (404, "ResourceNotFoundException",
                          f"Function not found: {arn('doesnotexist')}"),
                 client=raw_client, name="doesnotexist", sid="s3")
    expect_error(add_s3, (404, "ResourceNotFoundException",
                          f"Cannot find alias arn: {arn(fn, 'alias-doesnotexist')}"),
                 client=raw_client, name=f"{fn}:alias-doesnotexist", sid="s3")
    expect_error(add_s3, (404, "ResourceNotFoundException",
                          f"Function not found: {arn(fn, '42')}"),
                 client=raw_client, name=fn, sid="s3", Qualifier="42")
    expect_error(add_s3, (404, "ResourceNotFoundException",
                          f"Function not found: {arn(fn, 'valid-with-$-but-doesnotexist')}"),
                 client=raw_client, name=fn, sid="s3", Qualifier="valid-with-$-but-doesnotexist")
    expect_error(raw_client.remove_permission,
                 (404, "ResourceNotFoundException",
                  f"No policy found for: {arn('doesnotexist')}"),
                 FunctionName="doesnotexist", StatementId="s3")
    expect_error(raw_client.remove_permission,
                 (404, "ResourceNotFoundException",
                  f"Cannot find alias arn: {arn(fn, 'alias-doesnotexist')}"),
                 FunctionName=fn, StatementId="s3", Qualifier="alias-doesnotexist")
