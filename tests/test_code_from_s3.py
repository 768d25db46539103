"""Code named by S3 location, as AWS Lambda takes it: CreateFunction's `Code.S3Bucket`/`S3Key`/
`S3ObjectVersion`, UpdateFunctionCode's and PublishLayerVersion's `Content`, fetched from the S3
Flint is pointed at (moto's server here, as `--aws-endpoint-url`), stored by digest like an
uploaded zip, with AWS's errors: "Error occurred while GetObject. S3 Error Code: ... S3 Error
Message: ..." (recorded against AWS for NoSuchBucket and NoSuchKey), "Could not unzip uploaded
file" for an object that is not a zip."""

import pytest
import botocore.exceptions

from conftest import (
    ROLE,
    client_error,
    code_sha256,
    invoke_json,
    make_zip,
    unique_name,
    wait_active,
)


def handler_zip(answer: str) -> bytes:
    return make_zip({"index.py": f"def handler(event, context):\n    return {answer!r}\n"})


@pytest.fixture
def bucket(aws_services):
    s3 = aws_services.client("s3")
    name = unique_name("code").lower()
    s3.create_bucket(Bucket=name)
    return s3, name


def create_from_s3(client, name, code, **extra):
    return client.create_function(
        FunctionName=name, Runtime="python3.12", Handler="index.handler", Role=ROLE,
        Code=code, **extra)


def test_create_function_from_an_s3_object_runs_it_and_reports_its_digest(lambda_client, bucket):
    s3, b = bucket
    zip_bytes = handler_zip("from s3")
    s3.put_object(Bucket=b, Key="fn/code.zip", Body=zip_bytes)
    name = unique_name("s3fn")
    created = create_from_s3(lambda_client, name, {"S3Bucket": b, "S3Key": "fn/code.zip"})
    assert created["CodeSha256"] == code_sha256(zip_bytes)
    assert created["CodeSize"] == len(zip_bytes)
    wait_active(lambda_client, name)
    _, payload = invoke_json(lambda_client, name, {})
    assert payload == "from s3"
    got = lambda_client.get_function(FunctionName=name)
    assert got["Code"]["RepositoryType"] == "S3"
    # The code is Flint's own copy: deleting the object changes nothing.
    s3.delete_object(Bucket=b, Key="fn/code.zip")
    _, payload = invoke_json(lambda_client, name, {})
    assert payload == "from s3"


def test_a_versioned_object_is_fetched_at_the_version_asked_for(lambda_client, bucket):
    s3, b = bucket
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    first = handler_zip("v1")
    v1 = s3.put_object(Bucket=b, Key="code.zip", Body=first)["VersionId"]
    s3.put_object(Bucket=b, Key="code.zip", Body=handler_zip("v2"))
    name = unique_name("s3ver")
    created = create_from_s3(lambda_client, name,
                             {"S3Bucket": b, "S3Key": "code.zip", "S3ObjectVersion": v1})
    assert created["CodeSha256"] == code_sha256(first)
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "v1"


@pytest.mark.parametrize("what", ["bucket", "key", "version"])
def test_a_missing_bucket_key_or_version_is_s3s_error(lambda_client, bucket, what):
    s3, b = bucket
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=b, Key="code.zip", Body=handler_zip("x"))
    code = {"S3Bucket": b, "S3Key": "code.zip"}
    expected = None
    if what == "bucket":
        code["S3Bucket"] = unique_name("missing").lower()
        expected = ("Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error "
                    "Message: The specified bucket does not exist")
    elif what == "key":
        code["S3Key"] = "nope.zip"
        expected = ("Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error "
                    "Message: The specified key does not exist.")
    else:
        code["S3ObjectVersion"] = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    name = unique_name("s3missing")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_from_s3(lambda_client, name, code)
    err = client_error(e)
    assert err["status"] == 400
    assert err["code"] == "InvalidParameterValueException"
    assert err["type"] == "User"
    if expected:
        assert err["message"] == expected
    else:
        # S3's own code for the version (NoSuchVersion, or InvalidArgument for an id it cannot
        # read), quoted the same way.
        assert err["message"].startswith("Error occurred while GetObject. S3 Error Code: ")
        assert "Version" in err["message"] or "version" in err["message"]
    # Nothing was created.
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=name)


def test_an_object_that_is_not_a_zip_cannot_be_unzipped(lambda_client, bucket):
    s3, b = bucket
    s3.put_object(Bucket=b, Key="not.zip", Body=b"this is not a zipfile, just a random string")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_from_s3(lambda_client, unique_name("s3bad"), {"S3Bucket": b, "S3Key": "not.zip"})
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidParameterValueException")
    assert err["message"] == ("Could not unzip uploaded file. Please check your file, then try "
                              "to upload again.")


def test_update_function_code_from_s3(lambda_client, bucket):
    s3, b = bucket
    s3.put_object(Bucket=b, Key="a.zip", Body=handler_zip("before"))
    after = handler_zip("after")
    s3.put_object(Bucket=b, Key="b.zip", Body=after)
    name = unique_name("s3upd")
    create_from_s3(lambda_client, name, {"S3Bucket": b, "S3Key": "a.zip"})
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "before"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.update_function_code(FunctionName=name, S3Bucket=b, S3Key="missing.zip")
    assert client_error(e)["message"].startswith(
        "Error occurred while GetObject. S3 Error Code: NoSuchKey.")
    updated = lambda_client.update_function_code(FunctionName=name, S3Bucket=b, S3Key="b.zip")
    assert updated["CodeSha256"] == code_sha256(after)
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "after"


def test_publish_layer_version_from_s3(lambda_client, bucket):
    s3, b = bucket
    layer_zip = make_zip({"python/s3layer_mod.py": "VALUE = 'from the layer'\n"})
    s3.put_object(Bucket=b, Key="layer.zip", Body=layer_zip)
    layer = unique_name("s3layer")
    published = lambda_client.publish_layer_version(
        LayerName=layer, Content={"S3Bucket": b, "S3Key": "layer.zip"},
        CompatibleRuntimes=["python3.12"])
    assert published["Content"]["CodeSha256"] == code_sha256(layer_zip)
    assert published["Content"]["CodeSize"] == len(layer_zip)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.publish_layer_version(
            LayerName=layer, Content={"S3Bucket": b, "S3Key": "absent.zip"})
    assert client_error(e)["message"].startswith(
        "Error occurred while GetObject. S3 Error Code: NoSuchKey.")
    name = unique_name("s3layerfn")
    lambda_client.create_function(
        FunctionName=name, Runtime="python3.12", Handler="index.handler", Role=ROLE,
        Code={"ZipFile": make_zip({"index.py": (
            "import s3layer_mod\n\ndef handler(event, context):\n"
            "    return s3layer_mod.VALUE\n")})},
        Layers=[published["LayerVersionArn"]])
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "from the layer"
