"""The AWS SDKs inside the managed runtimes, as AWS's runtimes carry them: boto3 in python3.x and
the AWS SDK for JavaScript v3 in nodejs18.x and later, importable without being in the zip (a
zip's own copy wins), fetched by `flint runtimes install` from PyPI and the npm registry; and the
exact Node.js version for a nodejsN.x runtime, from the npm registry's platform package."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from conftest import (REPO, RUNTIMES_DIR, FlintServer, create_function, invoke_json, make_zip,
                      unique_name)


def runtimes_install(flint_bin: Path, runtimes_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(flint_bin), "runtimes", "--runtimes-dir", str(runtimes_dir), "install", *args],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"flint runtimes install failed:\n{done.stdout}\n{done.stderr}"
    return done.stderr


@pytest.fixture(scope="module")
def sdks_installed(flint_bin: Path) -> Path:
    runtimes_install(flint_bin, RUNTIMES_DIR, "--only", "python-sdk,node-sdk")
    return RUNTIMES_DIR


@pytest.fixture(scope="module")
def sdk_client(sdks_installed, lambda_client):
    return lambda_client


PY_LIST = """
import boto3, botocore, os, sys
def handler(event, context):
    fns = boto3.client("lambda").list_functions()["Functions"]
    return {"boto3": boto3.__version__, "file": boto3.__file__,
            "names": [f["FunctionName"] for f in fns],
            "path": [p for p in sys.path if p.startswith(("/var", "/opt"))]}
"""


def test_python_functions_import_boto3_without_shipping_it(sdk_client, flint_bin):
    name = unique_name("boto3")
    create_function(sdk_client, name, zip_bytes=make_zip({"index.py": PY_LIST}))
    _, out = invoke_json(sdk_client, name, {})
    assert out.get("file", "").startswith("/var/lang/lib/python3.11/site-packages/boto3/"), out
    # The function's own boto3 call reached Flint (AWS_ENDPOINT_URL_LAMBDA, issued credentials).
    assert name in out["names"], out
    # AWS's order: the code, the layers, then the runtime's packages.
    path = out["path"]
    assert path.index("/var/task") < path.index("/opt/python") < path.index(
        "/var/lang/lib/python3.11/site-packages"), path
    listing = subprocess.run([str(flint_bin), "runtimes", "--runtimes-dir", str(RUNTIMES_DIR)],
                             capture_output=True, text=True, check=True).stdout
    assert f"boto3 {out['boto3']}" in listing, listing


def test_a_zips_own_boto3_wins_over_the_runtimes(sdk_client):
    name = unique_name("ownboto3")
    code = {
        "index.py": "import boto3\ndef handler(e, c):\n    return [boto3.__version__, boto3.__file__]\n",
        "boto3/__init__.py": "__version__ = 'the-zips-own'\n",
    }
    create_function(sdk_client, name, zip_bytes=make_zip(code))
    _, out = invoke_json(sdk_client, name, {})
    assert out == ["the-zips-own", "/var/task/boto3/__init__.py"]


NODE_CJS = """
const { LambdaClient, ListFunctionsCommand } = require('@aws-sdk/client-lambda');
exports.handler = async () => {
  const out = await new LambdaClient({}).send(new ListFunctionsCommand({}));
  return { resolved: require.resolve('@aws-sdk/client-lambda'),
           names: out.Functions.map((f) => f.FunctionName) };
};
"""

NODE_ESM = """
import { STSClient } from '@aws-sdk/client-sts';
import { LambdaClient, GetFunctionCommand } from '@aws-sdk/client-lambda';
export const handler = async (event, context) => {
  const got = await new LambdaClient({}).send(new GetFunctionCommand({ FunctionName: context.functionName }));
  return { sts: typeof STSClient, runtime: got.Configuration.Runtime };
};
"""


@pytest.mark.parametrize("runtime", ["nodejs20.x", "nodejs22.x"])
def test_node_functions_require_and_import_the_js_sdk_without_shipping_it(sdk_client, runtime):
    name = unique_name("jssdk")
    create_function(sdk_client, name, runtime=runtime, handler="index.handler",
                    zip_bytes=make_zip({"index.js": NODE_CJS}))
    _, out = invoke_json(sdk_client, name, {})
    assert out.get("resolved", "").startswith("/var/runtime/node_modules/@aws-sdk/client-lambda/"), out
    assert name in out["names"]
    # An ES module imports it too: AWS's Node.js runtimes search NODE_PATH for ES imports.
    esm = unique_name("jssdkesm")
    create_function(sdk_client, esm, runtime=runtime, handler="index.handler",
                    zip_bytes=make_zip({"index.mjs": NODE_ESM}))
    _, out = invoke_json(sdk_client, esm, {})
    assert out == {"sts": "function", "runtime": runtime}, out


def test_nodejs22_runs_node_22_once_installed_and_a_stand_in_is_named_in_the_log(
        flint_bin, session_tmp):
    # A runtimes dir of its own: the suite's other servers keep the host's Node.js.
    runtimes_dir = REPO / "target" / "runtimes-test-node"
    runtimes_install(flint_bin, runtimes_dir, "--only", "node", "--node", "22")
    srv = FlintServer(flint_bin, session_tmp / "node22-data", session_tmp / "node22.log",
                      extra_env={"FLINT_RUNTIMES_DIR": str(runtimes_dir)}).start()
    try:
        client = srv.client()
        code = make_zip({"index.js": "exports.handler = async () => [process.version, process.execPath];\n"})
        name = unique_name("node22")
        create_function(client, name, runtime="nodejs22.x", zip_bytes=code)
        _, out = invoke_json(client, name, {})
        assert out[0].startswith("v22."), out
        assert out[1] == "/var/lang/bin/node", out  # where AWS's runtimes keep it
        # Node 22 resolves ES imports from NODE_PATH (here a layer's) with in-thread hooks.
        layer = client.publish_layer_version(LayerName=unique_name("esmlayer"), Content={"ZipFile": make_zip({
            "nodejs/node_modules/flint-layer-pkg/package.json": '{"name":"flint-layer-pkg","main":"index.js"}',
            "nodejs/node_modules/flint-layer-pkg/index.js": "exports.where = 'layer';\n",
        })})["LayerVersionArn"]
        esm = unique_name("node22esm")
        create_function(client, esm, runtime="nodejs22.x", Layers=[layer], zip_bytes=make_zip({
            "index.mjs": "import { where } from 'flint-layer-pkg';\n"
                         "export const handler = async () => [where, process.version];\n"}))
        _, out = invoke_json(client, esm, {})
        assert out[0] == "layer" and out[1].startswith("v22."), out
        # nodejs24.x has no Node.js 24 here: it runs on a stand-in, and its log says so.
        other = unique_name("node24")
        create_function(client, other, runtime="nodejs24.x", zip_bytes=code)
        invoke_json(client, other, {})
        # Log lines reach the stream's file shortly after the invoke returns.
        deadline = time.monotonic() + 15
        while True:
            text = subprocess.run([str(flint_bin), "logs", "--data-dir", str(srv.data_dir), other],
                                  capture_output=True, text=True).stdout
            if "WARNING Flint: this host has no interpreter for nodejs24.x;" in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
    finally:
        srv.stop()


POWERTOOLS = ["aws-lambda-powertools==3.37.0", "aws-xray-sdk==2.15.0", "wrapt==2.5.2",
              "typing_extensions==4.16.0"]

POWERTOOLS_APP = """
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="shop")
metrics = Metrics(namespace="Flint", service="shop")
tracer = Tracer(service="shop")
app = LambdaFunctionUrlResolver()

@app.get("/hello/<name>")
@tracer.capture_method
def hello(name: str):
    logger.info("greeting", extra={"who": name})
    metrics.add_metric(name="Greetings", unit=MetricUnit.Count, value=1)
    return {"hello": name}

@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event, context):
    return app.resolve(event, context)
"""


def url_event(path: str) -> dict:
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "example.lambda-url.us-east-1.on.aws"},
        "requestContext": {"http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "test"},
                           "requestId": "r", "routeKey": "$default", "stage": "$default",
                           "timeEpoch": 0, "domainName": "example.lambda-url.us-east-1.on.aws"},
        "isBase64Encoded": False,
    }


def test_powertools_logger_metrics_tracer_and_event_handler_work_unmodified(
        sdk_client, session_tmp, tmp_path):
    import base64
    import json
    import sys
    target = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--only-binary=:all:", "--target", str(target), *POWERTOOLS],
                   check=True, timeout=600)
    files = {f"python/{p.relative_to(target)}": p.read_bytes()
             for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    layer = sdk_client.publish_layer_version(
        LayerName=unique_name("powertools"), Content={"ZipFile": make_zip(files)},
        CompatibleRuntimes=["python3.11"])["LayerVersionArn"]
    name = unique_name("powertools")
    create_function(sdk_client, name, Layers=[layer],
                    zip_bytes=make_zip({"index.py": POWERTOOLS_APP}))
    resp, out = invoke_json(sdk_client, name, url_event("/hello/ada"), LogType="Tail")
    assert out["statusCode"] == 200, out
    assert json.loads(out["body"]) == {"hello": "ada"}
    lines = [json.loads(line) for line in base64.b64decode(resp["LogResult"]).decode().splitlines()
             if line.startswith("{")]
    greeting = next(r for r in lines if r.get("message") == "greeting")
    # inject_lambda_context read the context Flint's runtime gives, as on AWS.
    assert greeting["who"] == "ada" and greeting["service"] == "shop"
    assert greeting["function_name"] == name and greeting["cold_start"] is True
    assert greeting["function_request_id"] == resp["ResponseMetadata"]["RequestId"]
    # Metrics in CloudWatch's embedded metric format.
    emf = next(r for r in lines if "_aws" in r)
    assert emf["Greetings"] == [1.0] or emf["Greetings"] == 1.0, emf
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Flint"
