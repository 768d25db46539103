"""`flint serve --function-credentials assume-role`: each execution environment runs with a session
of its function's execution role from STS `AssumeRole` (moto's STS here), as on AWS — the function's
calls to other services act as `assumed-role/<role>/<function>`, each environment has keys of its
own, and Flint's own API accepts them as the function's account. (LocalStack's AWS-validated
`test_assume_role` and `test_lambda_different_iam_keys_environment` record AWS's answers.)"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    FlintServer,
    client_error,
    make_zip,
    unique_name,
    wait_active,
)

# Returns its own credentials and stream after `sleep` seconds (two at once need two environments).
ENV_CODE = """
import os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN", "AWS_LAMBDA_LOG_STREAM_NAME")}
"""


def start(flint_bin, tmp_path, request, endpoint, env):
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_args=["--function-credentials", "assume-role",
                                  "--aws-endpoint-url", endpoint],
                      extra_env=env)
    request.node._flint_server = srv
    request.node._flint_log_start = 0
    srv.start()
    return srv


def create(client, name, role):
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="index.handler",
                           Role=role, Code={"ZipFile": make_zip({"index.py": ENV_CODE})})
    wait_active(client, name)


def invoke(client, name, event):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    payload = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, payload
    return payload


def sts_with(aws_services, env):
    return boto3.session.Session().client(
        "sts", endpoint_url=aws_services.endpoint, region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"])


@pytest.fixture
def assume_role_server(flint_bin, tmp_path, request, aws_services):
    srv = start(flint_bin, tmp_path, request, aws_services.endpoint, aws_services.flint_env())
    yield srv
    srv.stop()


def test_each_environment_runs_as_its_own_session_of_the_execution_role(assume_role_server,
                                                                        aws_services):
    client = assume_role_server.client()
    name = unique_name("role")
    role = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/{unique_name('exec')}"
    create(client, name, role)
    # Two invokes at once: two environments, each with keys of its own.
    barrier = threading.Barrier(2)

    def both(_):
        barrier.wait()
        return invoke(client, name, {"sleep": 1.5})

    with ThreadPoolExecutor(2) as pool:
        envs = list(pool.map(both, range(2)))
    assert envs[0]["AWS_LAMBDA_LOG_STREAM_NAME"] != envs[1]["AWS_LAMBDA_LOG_STREAM_NAME"]
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert envs[0][k] != envs[1][k], k
    # STS knows them: both are sessions of the role named after the function, as on AWS.
    role_name = role.rsplit("/", 1)[1]
    for env in envs:
        identity = sts_with(aws_services, env).get_caller_identity()
        assert identity["Arn"] == f"arn:aws:sts::{DEFAULT_ACCOUNT}:assumed-role/{role_name}/{name}"
    # Flint's own API accepts the session's keys, as the function's account.
    own = boto3.session.Session().client(
        "lambda", endpoint_url=assume_role_server.endpoint, region_name=REGION,
        aws_access_key_id=envs[0]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=envs[0]["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=envs[0]["AWS_SESSION_TOKEN"],
        config=Config(retries={"total_max_attempts": 1}))
    assert own.get_function(FunctionName=name)["Configuration"]["FunctionArn"].startswith(
        f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}")


def test_a_one_character_function_gets_lambdas_session_name(assume_role_server, aws_services):
    client = assume_role_server.client()
    name = "q"
    role = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/{unique_name('exec')}"
    create(client, name, role)
    env = invoke(client, name, {})
    arn = sts_with(aws_services, env).get_caller_identity()["Arn"]
    assert arn.endswith(f"/{role.rsplit('/', 1)[1]}/q@lambda_function"), arn
    client.delete_function(FunctionName=name)


def test_a_role_sts_does_not_give_fails_the_invoke_saying_why(flint_bin, tmp_path, request):
    # Nothing answers STS at this endpoint: the environment does not start with made-up keys.
    srv = start(flint_bin, tmp_path, request, "http://127.0.0.1:9", {
        "AWS_ACCESS_KEY_ID": DEFAULT_ACCOUNT, "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": REGION, "AWS_MAX_ATTEMPTS": "1"})
    try:
        client = srv.client()
        name = unique_name("norole")
        create(client, name, f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/nowhere")
        with pytest.raises(Exception) as e:
            client.invoke(FunctionName=name, Payload=b"{}")
        err = client_error(e)
        assert err["code"] == "ServiceException", err
        assert "AssumeRole" in err["message"] and "role/nowhere" in err["message"], err
    finally:
        srv.stop()
