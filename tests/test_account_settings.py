"""GetAccountSettings as AWS Lambda answers it: the AccountLimit / AccountUsage shape, and usage
that follows what the account does — FunctionCount with creates and deletes, TotalCodeSize with
function code, published versions (not configuration changes) and layer versions,
UnreservedConcurrentExecutions with reservations. Each test uses a fresh account so that counts
are exact; regions are separate, as on AWS."""

import pytest

from conftest import (
    create_function,
    make_zip,
    python_zip,
    random_account,
    unique_name,
    wait_active,
)


@pytest.fixture
def account(make_client):
    acct = random_account()
    return acct, make_client(account=acct)


def usage(client):
    return client.get_account_settings()["AccountUsage"]


def other_code():
    return make_zip({"index.py": "def handler(e, c):\n    return 'other code ' + '#' * 300\n"})


def test_shape_and_limits_of_a_fresh_account(account):
    _, client = account
    resp = client.get_account_settings()
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    limit = resp["AccountLimit"]
    assert sorted(limit) == ["CodeSizeUnzipped", "CodeSizeZipped", "ConcurrentExecutions",
                             "TotalCodeSize", "UnreservedConcurrentExecutions"]
    assert limit["CodeSizeUnzipped"] == 262144000
    assert limit["CodeSizeZipped"] == 52428800
    assert limit["TotalCodeSize"] == 80530636800
    assert limit["ConcurrentExecutions"] >= 100
    assert limit["UnreservedConcurrentExecutions"] == limit["ConcurrentExecutions"]
    assert resp["AccountUsage"] == {"FunctionCount": 0, "TotalCodeSize": 0}


def test_function_count_and_code_size_follow_creates_and_deletes(account):
    _, client = account
    first_zip, second_zip = python_zip(), other_code()
    first, second = unique_name("acct1"), unique_name("acct2")
    create_function(client, first, zip_bytes=first_zip)
    assert usage(client) == {"FunctionCount": 1, "TotalCodeSize": len(first_zip)}
    create_function(client, second, zip_bytes=second_zip)
    assert usage(client) == {"FunctionCount": 2,
                             "TotalCodeSize": len(first_zip) + len(second_zip)}
    client.delete_function(FunctionName=first)
    assert usage(client) == {"FunctionCount": 1, "TotalCodeSize": len(second_zip)}
    client.delete_function(FunctionName=second)
    assert usage(client) == {"FunctionCount": 0, "TotalCodeSize": 0}


def test_published_versions_count_towards_code_size(account):
    _, client = account
    zip_bytes = python_zip()
    name = unique_name("acctver")
    create_function(client, name, zip_bytes=zip_bytes)
    before = usage(client)["TotalCodeSize"]
    assert before == len(zip_bytes)

    # Same code again, published: the new version's copy counts (as AWS measured: +code size).
    client.update_function_code(FunctionName=name, ZipFile=zip_bytes, Publish=True)
    wait_active(client, name)
    after_publish = usage(client)
    assert after_publish["TotalCodeSize"] == before + len(zip_bytes)
    # Versions are not functions.
    assert after_publish["FunctionCount"] == 1

    # A configuration change alone adds nothing.
    client.update_function_configuration(FunctionName=name, Description="config only")
    wait_active(client, name)
    assert usage(client)["TotalCodeSize"] == after_publish["TotalCodeSize"]

    # Replacing $LATEST's code swaps its size.
    bigger = other_code()
    client.update_function_code(FunctionName=name, ZipFile=bigger)
    wait_active(client, name)
    assert usage(client)["TotalCodeSize"] == len(zip_bytes) + len(bigger)

    # Deleting the version gives its size back.
    client.delete_function(FunctionName=name, Qualifier="1")
    assert usage(client)["TotalCodeSize"] == len(bigger)


def test_layer_versions_count_towards_code_size(account):
    _, client = account
    layer_zip = make_zip({"python/acct_layer.py": "X = 1\n" + "#" * 100})
    name = unique_name("acctlayer")
    client.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip})
    assert usage(client) == {"FunctionCount": 0, "TotalCodeSize": len(layer_zip)}
    client.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip})
    assert usage(client)["TotalCodeSize"] == 2 * len(layer_zip)
    client.delete_layer_version(LayerName=name, VersionNumber=1)
    assert usage(client)["TotalCodeSize"] == len(layer_zip)


def test_unreserved_concurrency_follows_reservations(account):
    _, client = account
    total = client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    name = unique_name("acctconc")
    create_function(client, name)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=25)
    limit = client.get_account_settings()["AccountLimit"]
    assert limit["UnreservedConcurrentExecutions"] == total - 25
    assert limit["ConcurrentExecutions"] == total
    client.delete_function_concurrency(FunctionName=name)
    assert client.get_account_settings()["AccountLimit"][
        "UnreservedConcurrentExecutions"] == total


def test_accounts_and_regions_are_separate(account, make_client):
    acct, client = account
    create_function(client, unique_name("acctsep"))
    assert usage(client)["FunctionCount"] == 1
    other_region = make_client(account=acct, region="eu-west-1")
    assert usage(other_region) == {"FunctionCount": 0, "TotalCodeSize": 0}
    other_account = make_client(account=random_account())
    assert usage(other_account) == {"FunctionCount": 0, "TotalCodeSize": 0}
