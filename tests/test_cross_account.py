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
