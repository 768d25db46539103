"""Tags as AWS Lambda answers them: TagResource / UntagResource / ListTags on functions (and on
event source mappings and code signing configs, which are taggable too), Tags given at
CreateFunction and shown by GetFunction, the 50-tag limit, and the errors for qualified ARNs,
malformed ARNs and missing resources. Messages are those recorded against real AWS."""

import uuid

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    python_zip,
    unique_name,
    wait_active,
)

RESOURCE_PATTERN = (
    r"arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
    r"(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-_]+)|"
    r"code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)")
QUALIFIED_MESSAGE = ("Tags on function aliases and versions are not supported. Please specify a "
                     "function ARN.")
TOO_MANY = "Number of tags exceeds resource tag limit."


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def status(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def tags_of(client, resource):
    resp = client.list_tags(Resource=resource)
    assert status(resp) == 200
    return resp["Tags"]


def expect_error(call, expected, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == expected, kwargs


@pytest.fixture(scope="module")
def tagged_fn(lambda_client):
    name = unique_name("tagged")
    create_function(lambda_client, name, Tags={"key_a": "value_a"})
    lambda_client.publish_version(FunctionName=name)
    return name


def run_tag_lifecycle(client, resource):
    """The sequence of TestLambdaTag::test_tag_lifecycle, on any taggable resource."""
    assert status(client.tag_resource(Resource=resource, Tags={"A": "tag-a"})) == 204
    assert tags_of(client, resource) == {"A": "tag-a"}
    client.tag_resource(Resource=resource, Tags={"B": "tag-b", "C": "tag-c"})
    assert tags_of(client, resource) == {"A": "tag-a", "B": "tag-b", "C": "tag-c"}
    client.tag_resource(Resource=resource, Tags={"C": "tag-c-newsuffix", "D": "tag-d"})
    assert tags_of(client, resource) == {"A": "tag-a", "B": "tag-b", "C": "tag-c-newsuffix",
                                         "D": "tag-d"}
    assert status(client.untag_resource(Resource=resource, TagKeys=["A"])) == 204
    assert tags_of(client, resource) == {"B": "tag-b", "C": "tag-c-newsuffix", "D": "tag-d"}
    client.untag_resource(Resource=resource, TagKeys=["B", "C"])
    assert tags_of(client, resource) == {"D": "tag-d"}
    assert status(client.untag_resource(Resource=resource, TagKeys=["F"])) == 204
    assert tags_of(client, resource) == {"D": "tag-d"}
    client.untag_resource(Resource=resource, TagKeys=["D", "F"])
    assert tags_of(client, resource) == {}


def test_tag_lifecycle_on_a_function(lambda_client):
    name = unique_name("taglife")
    create_function(lambda_client, name)
    assert tags_of(lambda_client, arn(name)) == {}
    run_tag_lifecycle(lambda_client, arn(name))


def test_tags_given_at_create_show_in_get_function_and_list_tags(lambda_client, tagged_fn):
    assert tags_of(lambda_client, arn(tagged_fn)) == {"key_a": "value_a"}
    assert lambda_client.get_function(FunctionName=tagged_fn)["Tags"] == {"key_a": "value_a"}


def test_get_function_follows_tag_changes_and_drops_empty_tags(lambda_client):
    name = unique_name("gettags")
    create_function(lambda_client, name, Tags={"key_a": "value_a"})
    lambda_client.tag_resource(Resource=arn(name), Tags={
        "key_b": "value_b", "key_c": "value_c", "key_d": "value_d", "key_e": "value_e"})
    lambda_client.tag_resource(Resource=arn(name), Tags={"key_c": "value_x"})
    expected = {"key_a": "value_a", "key_b": "value_b", "key_c": "value_x", "key_d": "value_d",
                "key_e": "value_e"}
    assert lambda_client.get_function(FunctionName=name)["Tags"] == expected
    lambda_client.untag_resource(Resource=arn(name), TagKeys=["key_c", "key_d"])
    assert lambda_client.get_function(FunctionName=name)["Tags"] == {
        "key_a": "value_a", "key_b": "value_b", "key_e": "value_e"}
    lambda_client.untag_resource(Resource=arn(name), TagKeys=["key_a", "key_b", "key_e"])
    got = lambda_client.get_function(FunctionName=name)
    assert "Tags" not in got
    # Tags are not part of the function's configuration.
    assert "Tags" not in got["Configuration"]


def test_every_tag_change_gives_latest_a_new_revision_id(lambda_client):
    # AWS (recorded, TestLambdaTags::test_tag_lifecycle): each TagResource / UntagResource moves
    # $LATEST's RevisionId; LastModified stays.
    name = unique_name("tagrev")
    create_function(lambda_client, name, Tags={"key_a": "value_a"})
    seen = []

    def revision():
        config = lambda_client.get_function(FunctionName=name)["Configuration"]
        seen.append(config["RevisionId"])
        return config

    before = revision()
    lambda_client.tag_resource(Resource=arn(name), Tags={"key_b": "value_b"})
    revision()
    lambda_client.untag_resource(Resource=arn(name), TagKeys=["key_a"])
    after = revision()
    assert len(set(seen)) == 3, seen
    assert after["LastModified"] == before["LastModified"]


def test_tagging_a_pending_function_does_not_keep_it_pending(lambda_client):
    name = unique_name("tagpending")
    create_function(lambda_client, name, wait=False)
    lambda_client.tag_resource(Resource=arn(name), Tags={"during": "create"})
    assert wait_active(lambda_client, name)["State"] == "Active"
    lambda_client.update_function_configuration(FunctionName=name, Description="changed")
    lambda_client.tag_resource(Resource=arn(name), Tags={"during": "update"})
    waiter = lambda_client.get_waiter("function_updated_v2")
    waiter.wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert config["LastUpdateStatus"] == "Successful"


def test_tags_are_not_allowed_on_versions_and_aliases(lambda_client, tagged_fn):
    for qualifier in ("1", "$LATEST", "somealias"):
        expect_error(lambda_client.tag_resource,
                     (400, "InvalidParameterValueException", QUALIFIED_MESSAGE),
                     Resource=arn(tagged_fn, qualifier), Tags={"a": "b"})
    expect_error(lambda_client.untag_resource,
                 (400, "InvalidParameterValueException", QUALIFIED_MESSAGE),
                 Resource=arn(tagged_fn, "1"), TagKeys=["a"])
    assert tags_of(lambda_client, arn(tagged_fn)) == {"key_a": "value_a"}


def test_tag_operations_on_a_missing_function_are_404(lambda_client):
    missing = arn(unique_name("gone"))
    expected = (404, "ResourceNotFoundException", f"Function not found: {missing}")
    expect_error(lambda_client.tag_resource, expected, Resource=missing, Tags={"a": "b"})
    expect_error(lambda_client.untag_resource, expected, Resource=missing, TagKeys=["a"])
    expect_error(lambda_client.list_tags, expected, Resource=missing)


def test_tags_disappear_with_the_function(lambda_client):
    name = unique_name("tagdel")
    create_function(lambda_client, name, Tags={"x": "y"})
    lambda_client.delete_function(FunctionName=name)
    expect_error(lambda_client.list_tags,
                 (404, "ResourceNotFoundException", f"Function not found: {arn(name)}"),
                 Resource=arn(name))
    create_function(lambda_client, name)
    assert tags_of(lambda_client, arn(name)) == {}


@pytest.mark.parametrize("resource", [
    "arn:aws:something",
    f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:foobar:thing",
])
def test_malformed_resource_arn_is_a_validation_error(raw_client, resource):
    expect_error(raw_client.tag_resource,
                 (400, "ValidationException",
                  f"1 validation error detected: Value '{resource}' at 'resource' failed to "
                  f"satisfy constraint: Member must satisfy regular expression pattern: "
                  f"{RESOURCE_PATTERN}"),
                 Resource=resource, Tags={"a": "b"})


def test_untag_without_keys_and_tag_without_tags(raw_client, tagged_fn):
    expect_error(raw_client.untag_resource,
                 (400, "ValidationException",
                  "1 validation error detected: Value null at 'tagKeys' failed to satisfy "
                  "constraint: Member must not be null"),
                 Resource=arn(tagged_fn))
    expect_error(raw_client.tag_resource,
                 (400, "InvalidParameterValueException",
                  "An error occurred and the request cannot be processed."),
                 Resource=arn(tagged_fn), Tags={})


def test_tag_limit_is_50(lambda_client, raw_client):
    name = unique_name("taglimit")
    create_function(lambda_client, name)
    too_many = {f"{i}_key": f"{i}_value" for i in range(51)}
    expect_error(raw_client.tag_resource, (400, "InvalidParameterValueException", TOO_MANY),
                 Resource=arn(name), Tags=too_many)
    assert tags_of(lambda_client, arn(name)) == {}
    fifty = {f"{i}_key": f"{i}_value" for i in range(50)}
    lambda_client.tag_resource(Resource=arn(name), Tags=fifty)
    assert tags_of(lambda_client, arn(name)) == fifty
    # Overwriting an existing key keeps the count at 50; one more key is refused.
    lambda_client.tag_resource(Resource=arn(name), Tags={"0_key": "changed"})
    expect_error(raw_client.tag_resource, (400, "InvalidParameterValueException", TOO_MANY),
                 Resource=arn(name), Tags={"a_new_key": "x"})
    assert len(tags_of(lambda_client, arn(name))) == 50
    expect_error(lambda_client.create_function,
                 (400, "InvalidParameterValueException", TOO_MANY),
                 FunctionName=unique_name("toomanytags"), Runtime="python3.11",
                 Handler="index.handler", Role="arn:aws:iam::000000000000:role/lambda-role",
                 Code={"ZipFile": python_zip()}, Tags=too_many)


def test_tags_are_per_account(make_client, lambda_client, tagged_fn):
    other = make_client(account="123456789012")
    foreign = arn(tagged_fn)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        other.list_tags(Resource=foreign)
    # Another account's function is not reachable: AWS answers 403 AccessDeniedException.
    assert (client_error(e)["status"], client_error(e)["code"]) == (403, "AccessDeniedException")


def test_tag_lifecycle_on_an_event_source_mapping(lambda_client, tagged_fn, aws_services):
    queue = f"tagged-{uuid.uuid4().hex[:8]}"
    aws_services.client("sqs").create_queue(QueueName=queue)  # Flint asks SQS it exists
    esm = lambda_client.create_event_source_mapping(
        FunctionName=tagged_fn, EventSourceArn=f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT}:{queue}",
        Tags={"created": "yes"})
    try:
        esm_arn = esm["EventSourceMappingArn"]
        assert esm_arn == (f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:event-source-mapping:"
                           f"{esm['UUID']}")
        assert tags_of(lambda_client, esm_arn) == {"created": "yes"}
        lambda_client.untag_resource(Resource=esm_arn, TagKeys=["created"])
        run_tag_lifecycle(lambda_client, esm_arn)
    finally:
        lambda_client.delete_event_source_mapping(UUID=esm["UUID"])


def test_missing_event_source_mapping_tags_are_404(lambda_client):
    missing = (f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:event-source-mapping:"
               f"{uuid.uuid4()}")
    expected = (404, "ResourceNotFoundException", f"Event source mapping not found: {missing}")
    expect_error(lambda_client.tag_resource, expected, Resource=missing, Tags={"a": "b"})
    expect_error(lambda_client.untag_resource, expected, Resource=missing, TagKeys=["a"])
    expect_error(lambda_client.list_tags, expected, Resource=missing)


def test_tags_on_a_code_signing_config(lambda_client):
    csc = lambda_client.create_code_signing_config(
        AllowedPublishers={"SigningProfileVersionArns": [
            f"arn:aws:signer:{REGION}:{DEFAULT_ACCOUNT}:/signing-profiles/tagged"]},
        Tags={"team": "a"})["CodeSigningConfig"]
    try:
        csc_arn = csc["CodeSigningConfigArn"]
        assert tags_of(lambda_client, csc_arn) == {"team": "a"}
        lambda_client.tag_resource(Resource=csc_arn, Tags={"env": "prod"})
        assert tags_of(lambda_client, csc_arn) == {"team": "a", "env": "prod"}
        lambda_client.untag_resource(Resource=csc_arn, TagKeys=["team"])
        assert tags_of(lambda_client, csc_arn) == {"env": "prod"}
    finally:
        lambda_client.delete_code_signing_config(CodeSigningConfigArn=csc["CodeSigningConfigArn"])
