"""Who is asking: SigV4 is required, a 12-digit access key id names the account (otherwise
000000000000), the region comes from the signature's scope, and each (account, region) sees only
its own functions."""

import urllib.error
import urllib.request

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    ROLE,
    client_error,
    create_function,
    invoke_json,
    not_found_message,
    python_zip,
    random_account,
    unique_name,
)


def names_in(client):
    return {f["FunctionName"] for page in client.get_paginator("list_functions").paginate()
            for f in page["Functions"]}


def test_unsigned_requests_are_refused_with_403(server, python_fn):
    for method, path, body in [
        ("GET", "/2015-03-31/functions/", None),
        ("GET", f"/2015-03-31/functions/{python_fn}", None),
        ("POST", f"/2015-03-31/functions/{python_fn}/invocations", b"{}"),
    ]:
        req = urllib.request.Request(server.endpoint + path, data=body, method=method)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 403, (method, path)


def test_a_forged_authorization_header_without_signature_parts_is_403(server):
    req = urllib.request.Request(server.endpoint + "/2015-03-31/functions/", method="GET",
                                 headers={"Authorization": "AWS4-HMAC-SHA256 garbage"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403


def test_non_numeric_access_key_means_the_default_account(make_client):
    client = make_client(access_key="AKIAIOSFODNN7EXAMPLE")
    name = unique_name("default-acct")
    resp = create_function(client, name, wait=False)
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:{DEFAULT_ACCOUNT}:function:{name}"


def test_twelve_digit_access_key_names_the_account(make_client):
    account = random_account()
    client = make_client(account=account)
    name = unique_name("acct")
    resp = create_function(client, name)
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:{account}:function:{name}"
    _, ctx = invoke_json(client, name, {"action": "context"})
    assert ctx["invoked_function_arn"] == resp["FunctionArn"]


def test_region_comes_from_the_signature_scope(make_client):
    account = random_account()
    client = make_client(account=account, region="eu-west-1")
    name = unique_name("region")
    resp = create_function(client, name)
    assert resp["FunctionArn"] == f"arn:aws:lambda:eu-west-1:{account}:function:{name}"
    _, env = invoke_json(client, name, {"action": "env"})
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_accounts_do_not_see_each_others_functions(make_client):
    account_a, account_b = random_account(), random_account()
    a = make_client(account=account_a)
    b = make_client(account=account_b)
    name = unique_name("private")
    create_function(a, name)

    assert name in names_in(a)
    assert name not in names_in(b)
    with pytest.raises(b.exceptions.ResourceNotFoundException) as e:
        b.get_function(FunctionName=name)
    assert client_error(e)["message"] == not_found_message(name, account=account_b)
    with pytest.raises(b.exceptions.ResourceNotFoundException) as e:
        b.invoke(FunctionName=name, Payload=b"{}")
    assert client_error(e)["message"] == not_found_message(name, account=account_b,
                                                           qualifier="$LATEST")
    with pytest.raises(b.exceptions.ResourceNotFoundException):
        b.delete_function(FunctionName=name)
    # B may create its own function of the same name: no conflict across accounts.
    create_function(b, name, wait=False)
    # A's function is untouched by all that.
    assert a.get_function(FunctionName=name)["Configuration"]["FunctionArn"].split(":")[4] \
        == account_a


def test_regions_do_not_see_each_others_functions(make_client):
    account = random_account()
    east = make_client(account=account, region="us-east-1")
    west = make_client(account=account, region="eu-west-1")
    name = unique_name("regional")
    create_function(east, name)

    assert name in names_in(east)
    assert name not in names_in(west)
    with pytest.raises(west.exceptions.ResourceNotFoundException) as e:
        west.get_function(FunctionName=name)
    assert client_error(e)["message"] == not_found_message(name, account=account,
                                                           region="eu-west-1")
    with pytest.raises(west.exceptions.ResourceNotFoundException):
        west.invoke(FunctionName=name, Payload=b"{}")
    create_function(west, name, wait=False)  # same name, other region: no conflict


def test_an_arn_of_another_region_is_not_reachable(make_client):
    # AWS: 404 "Functions from '<arn region>' are not reachable in this region ('<region>')".
    account = random_account()
    east = make_client(account=account, region="us-east-1")
    name = unique_name("far")
    create_function(east, name)
    west = make_client(account=account, region="eu-west-1")
    arn = f"arn:aws:lambda:us-east-1:{account}:function:{name}"
    for call in (lambda: west.get_function(FunctionName=arn),
                 lambda: west.invoke(FunctionName=arn, Payload=b"{}")):
        with pytest.raises(west.exceptions.ResourceNotFoundException) as e:
            call()
        err = client_error(e)
        assert err["status"] == 404
        assert err["message"] == \
            "Functions from 'us-east-1' are not reachable in this region ('eu-west-1')"


def test_an_arn_of_another_account_is_access_denied(make_client):
    # AWS: a caller without permission on another account's function gets 403
    # AccessDeniedException (there are no resource policies granting it here).
    owner_account = random_account()
    owner = make_client(account=owner_account)
    name = unique_name("theirs")
    create_function(owner, name)
    other = make_client(account=random_account())
    arn = f"arn:aws:lambda:us-east-1:{owner_account}:function:{name}"
    with pytest.raises(other.exceptions.ClientError) as e:
        other.get_function(FunctionName=arn)
    err = client_error(e)
    assert (err["status"], err["code"]) == (403, "AccessDeniedException")


def test_create_in_one_account_does_not_conflict_with_the_default_account(
        lambda_client, make_client, python_fn):
    other = make_client(account=random_account())
    resp = other.create_function(FunctionName=python_fn, Runtime="python3.11",
                                 Handler="index.handler", Role=ROLE,
                                 Code={"ZipFile": python_zip()})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    # The default account's function is still its own.
    conf = lambda_client.get_function_configuration(FunctionName=python_fn)
    assert conf["FunctionArn"].split(":")[4] == DEFAULT_ACCOUNT


def test_creating_a_function_under_another_accounts_arn_is_a_bare_403(lambda_client):
    # Recorded against AWS (TestLambdaFunction::test_function_arns): 403 AccessDeniedException
    # with no message and no "Type" in the body.
    arn = f"arn:aws:lambda:us-east-1:{random_account()}:function:{unique_name('elsewhere')}"
    with pytest.raises(lambda_client.exceptions.ClientError) as e:
        lambda_client.create_function(FunctionName=arn, Runtime="python3.11",
                                      Handler="index.handler", Role=ROLE,
                                      Code={"ZipFile": python_zip()})
    err = client_error(e)
    assert (err["status"], err["code"]) == (403, "AccessDeniedException")
    assert err["message"] is None and "Type" not in err["response"], err["response"]
