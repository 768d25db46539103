"""Resource policies that are enforced: a caller of another account (its 12-digit access key
names it) may invoke or get a function exactly when a statement of the function's (or the
qualifier's) policy allows it; otherwise AWS's AccessDeniedException."""

import json

import botocore.exceptions
import pytest

from conftest import REGION, client_error, create_function, random_account, unique_name


def arn(account, name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{account}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def denied(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"]) == (403, "AccessDeniedException"), err
    return err["message"]


def test_another_account_invokes_and_gets_only_what_the_policy_shares(make_client):
    owner, other, third = random_account(), random_account(), random_account()
    oc, xc, tc = make_client(owner), make_client(other), make_client(third)
    name = unique_name("shared")
    create_function(oc, name)
    target = arn(owner, name)

    message = denied(xc.invoke, FunctionName=target, Payload=b"{}")
    assert message == (f"User: arn:aws:iam::{other}:root is not authorized to perform: "
                       f"lambda:InvokeFunction on resource: {target} because no "
                       "resource-based policy allows the lambda:InvokeFunction action")
    denied(xc.get_function, FunctionName=target)

    oc.add_permission(FunctionName=name, StatementId="share", Principal=other,
                      Action="lambda:InvokeFunction")
    resp = xc.invoke(FunctionName=target, Payload=json.dumps({"x": 1}))
    assert json.loads(resp["Payload"].read()) == {"x": 1}
    # Only that account, only that action.
    denied(tc.invoke, FunctionName=target, Payload=b"{}")
    denied(xc.get_function, FunctionName=target)

    oc.add_permission(FunctionName=name, StatementId="get", Principal=other,
                      Action="lambda:GetFunction")
    got = xc.get_function(FunctionName=target)
    assert got["Configuration"]["FunctionArn"] == target

    oc.remove_permission(FunctionName=name, StatementId="share")
    denied(xc.invoke, FunctionName=target, Payload=b"{}")


def test_a_statement_on_an_alias_shares_that_alias_only(make_client):
    owner, other = random_account(), random_account()
    oc, xc = make_client(owner), make_client(other)
    name = unique_name("sharedalias")
    create_function(oc, name)
    oc.publish_version(FunctionName=name)
    oc.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    oc.add_permission(FunctionName=name, Qualifier="live", StatementId="share",
                      Principal="*", Action="lambda:InvokeFunction")
    resp = xc.invoke(FunctionName=arn(owner, name, "live"), Payload=b"{}")
    assert resp["ExecutedVersion"] == "1"
    denied(xc.invoke, FunctionName=arn(owner, name), Payload=b"{}")


def test_a_source_account_condition_does_not_admit_direct_callers(make_client):
    owner, other = random_account(), random_account()
    oc, xc = make_client(owner), make_client(other)
    name = unique_name("sharedsrc")
    create_function(oc, name)
    oc.add_permission(FunctionName=name, StatementId="s3", Principal="s3.amazonaws.com",
                      Action="lambda:InvokeFunction", SourceAccount=other)
    denied(xc.invoke, FunctionName=arn(owner, name), Payload=b"{}")


def layer_zip(text):
    from conftest import make_zip
    return make_zip({"python/shared_lib.py": f"VALUE = {text!r}\n"})


LAYER_READER = b"""
def handler(event, context):
    import shared_lib
    return shared_lib.VALUE
"""


def test_another_account_reads_and_uses_a_layer_version_only_when_its_policy_shares_it(
        make_client):
    from conftest import make_zip
    owner, other, third = random_account(), random_account(), random_account()
    oc, xc, tc = make_client(owner), make_client(other), make_client(third)
    name = unique_name("sharedlayer")
    published = oc.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip("v1")},
                                         CompatibleRuntimes=["python3.11"])
    version_arn = published["LayerVersionArn"]
    layer_arn = version_arn.rsplit(":", 1)[0]
    reader = make_zip({"index.py": LAYER_READER.decode()})

    message = denied(xc.get_layer_version_by_arn, Arn=version_arn)
    assert message == (f"User: arn:aws:iam::{other}:root is not authorized to perform: "
                       f"lambda:GetLayerVersion on resource: {version_arn} because no "
                       "resource-based policy allows the lambda:GetLayerVersion action")
    denied(xc.get_layer_version, LayerName=layer_arn, VersionNumber=1)
    # Another account's versions are not disclosed, existing or not.
    denied(xc.get_layer_version, LayerName=layer_arn, VersionNumber=7)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_function(xc, unique_name("uselayer"), zip_bytes=reader, Layers=[version_arn])
    assert client_error(e)["code"] == "AccessDeniedException"

    oc.add_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="share",
                                    Action="lambda:GetLayerVersion", Principal=other)
    got = xc.get_layer_version_by_arn(Arn=version_arn)
    assert got["LayerVersionArn"] == version_arn
    assert xc.get_layer_version(LayerName=layer_arn, VersionNumber=1)["Version"] == 1
    fn = unique_name("uselayer")
    create_function(xc, fn, zip_bytes=reader, Layers=[version_arn])
    resp = xc.invoke(FunctionName=fn, Payload=b"{}")
    assert json.loads(resp["Payload"].read()) == "v1"
    # Only that account.
    denied(tc.get_layer_version_by_arn, Arn=version_arn)

    oc.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="share")
    denied(xc.get_layer_version_by_arn, Arn=version_arn)


def test_an_organisation_scoped_layer_grant_admits_no_direct_caller(make_client):
    owner, other = random_account(), random_account()
    oc, xc = make_client(owner), make_client(other)
    name = unique_name("orglayer")
    version_arn = oc.publish_layer_version(
        LayerName=name, Content={"ZipFile": layer_zip("org")})["LayerVersionArn"]
    oc.add_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="org",
                                    Action="lambda:GetLayerVersion", Principal="*",
                                    OrganizationId="o-abcdefghij")
    denied(xc.get_layer_version_by_arn, Arn=version_arn)
    oc.add_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="public",
                                    Action="lambda:GetLayerVersion", Principal="*")
    assert xc.get_layer_version_by_arn(Arn=version_arn)["Version"] == 1


def todays_client(server, account):
    """A Lambda client that knows today's API (Flint's embedded model) even when the installed
    botocore is older than PutResourcePolicy."""
    import os
    import shutil
    import tempfile

    import boto3
    import botocore.session
    from botocore.config import Config
    model = os.path.join(os.path.dirname(__file__), "..", "crates", "api", "model",
                         "lambda-2015-03-31.json.gz")
    data = tempfile.mkdtemp(prefix="flint-model-")
    os.makedirs(os.path.join(data, "lambda", "2015-03-31"))
    shutil.copy(model, os.path.join(data, "lambda", "2015-03-31", "service-2.json.gz"))
    core = botocore.session.get_session()
    core.get_component("data_loader").search_paths.insert(0, data)
    return boto3.session.Session(botocore_session=core).client(
        "lambda", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=account, aws_secret_access_key="flint-test-secret",
        config=Config(retries={"total_max_attempts": 1}))


def test_a_whole_policy_document_shares_a_function_like_its_statements(server, make_client):
    owner, other = random_account(), random_account()
    oc, xc = todays_client(server, owner), make_client(other)
    name = unique_name("docshare")
    create_function(oc, name)
    target = arn(owner, name)
    denied(xc.invoke, FunctionName=target, Payload=b"{}")
    document = {"Version": "2012-10-17", "Statement": [{
        "Sid": "doc", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{other}:root"},
        "Action": "lambda:InvokeFunction", "Resource": target}]}
    put = oc.put_resource_policy(ResourceArn=target, Policy=json.dumps(document))
    assert json.loads(put["Policy"])["Statement"][0]["Sid"] == "doc"
    got = oc.get_resource_policy(ResourceArn=target)
    assert got["RevisionId"] == put["RevisionId"]
    assert oc.get_policy(FunctionName=name)["RevisionId"] == put["RevisionId"]
    resp = xc.invoke(FunctionName=target, Payload=json.dumps({"x": 2}))
    assert json.loads(resp["Payload"].read()) == {"x": 2}

    with pytest.raises(botocore.exceptions.ClientError) as e:
        oc.delete_resource_policy(ResourceArn=target,
                                  RevisionId="00000000-0000-0000-0000-000000000000")
    assert client_error(e)["code"] == "PreconditionFailedException"
    oc.delete_resource_policy(ResourceArn=target, RevisionId=got["RevisionId"])
    denied(xc.invoke, FunctionName=target, Payload=b"{}")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        oc.get_resource_policy(ResourceArn=target)
    assert client_error(e)["code"] == "ResourceNotFoundException"


def test_a_lambda_star_grant_opens_awss_cross_account_operations_and_no_others(make_client):
    # AWS's list ("Granting function access to other accounts"): aliases, tags, concurrency,
    # versions, the policy and deletion, run on the owner's function; as LocalStack's
    # TestLambdaMultiAccounts recorded against AWS.
    owner, other, third = random_account(), random_account(), random_account()
    oc, xc, tc = make_client(owner), make_client(other), make_client(third)
    name = unique_name("sharedall")
    create_function(oc, name)
    target = arn(owner, name)

    denied(xc.create_alias, FunctionName=target, Name="live", FunctionVersion="$LATEST")
    denied(xc.tag_resource, Resource=target, Tags={"team": "x"})
    denied(xc.delete_function, FunctionName=target)

    oc.add_permission(FunctionName=name, StatementId="all", Principal=other, Action="lambda:*")

    xc.create_alias(FunctionName=target, Name="live", FunctionVersion="$LATEST")
    assert xc.get_alias(FunctionName=target, Name="live")["Name"] == "live"
    xc.update_alias(FunctionName=target, Name="live", Description="theirs")
    aliases = xc.list_aliases(FunctionName=target)["Aliases"]
    assert [(a["Name"], a["Description"]) for a in aliases] == [("live", "theirs")]
    # It is the owner's alias.
    assert oc.get_alias(FunctionName=name, Name="live")["AliasArn"] == f"{target}:live"
    xc.delete_alias(FunctionName=target, Name="live")
    assert oc.list_aliases(FunctionName=name)["Aliases"] == []

    xc.tag_resource(Resource=target, Tags={"team": "x"})
    assert xc.list_tags(Resource=target)["Tags"] == {"team": "x"}
    assert oc.list_tags(Resource=target)["Tags"] == {"team": "x"}
    xc.untag_resource(Resource=target, TagKeys=["team"])
    assert oc.list_tags(Resource=target)["Tags"] == {}

    xc.put_function_concurrency(FunctionName=target, ReservedConcurrentExecutions=1)
    assert oc.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    xc.delete_function_concurrency(FunctionName=target)
    assert "ReservedConcurrentExecutions" not in oc.get_function_concurrency(FunctionName=name)

    assert json.loads(xc.get_policy(FunctionName=target)["Policy"])["Statement"][0]["Sid"] == "all"
    version = xc.publish_version(FunctionName=target)["Version"]
    assert [v["Version"] for v in oc.list_versions_by_function(FunctionName=name)["Versions"]] \
        == ["$LATEST", version]

    # Only that account; and the operations AWS keeps to the owner stay closed, grant or not.
    denied(tc.get_alias, FunctionName=target, Name="live")
    denied(tc.delete_function, FunctionName=target)
    denied(xc.update_function_configuration, FunctionName=target, Description="mine now")
    denied(xc.add_permission, FunctionName=target, StatementId="me", Principal=third,
           Action="lambda:InvokeFunction")
    assert oc.get_function_configuration(FunctionName=name).get("Description") != "mine now"

    xc.delete_function(FunctionName=target)
    with pytest.raises(oc.exceptions.ResourceNotFoundException):
        oc.get_function(FunctionName=name)
