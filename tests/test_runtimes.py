"""Each managed runtime runs its handler style as AWS's does: python3.x (`module.function`),
nodejs18/20/22 (CommonJS with a callback or async handler, ES modules `.mjs`), and the OS-only
runtimes provided/provided.al2/provided.al2023 with a `bootstrap` speaking the Runtime API."""

import re
import shutil

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    create_function,
    fixture_text,
    invoke_json,
    make_zip,
    node_zip,
    provided_zip,
    request_id,
    unique_name,
)

PYTHON_RUNTIMES = ["python3.9", "python3.10", "python3.11", "python3.12", "python3.13"]
NODE_RUNTIMES = ["nodejs18.x", "nodejs20.x", "nodejs22.x"]
NODE_STYLES = ["callback", "async", "esm"]
PROVIDED_RUNTIMES = ["provided.al2", "provided.al2023"]


def arn(name):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


@pytest.fixture(scope="module")
def python_functions(lambda_client):
    """One probe function per Python runtime id (created together: creation is cheap)."""
    names = {}
    for runtime in PYTHON_RUNTIMES:
        names[runtime] = unique_name(runtime.replace(".", ""))
        create_function(lambda_client, names[runtime], runtime=runtime, wait=False)
    return names


@pytest.fixture(scope="module")
def node_functions(lambda_client):
    names = {}
    for runtime in NODE_RUNTIMES:
        for style in NODE_STYLES:
            zip_bytes, handler = node_zip(style)
            name = unique_name(f"{runtime.replace('.', '')}-{style}")
            create_function(lambda_client, name, runtime=runtime, handler=handler,
                            zip_bytes=zip_bytes, wait=False)
            names[(runtime, style)] = name
    return names


@pytest.mark.parametrize("runtime", PYTHON_RUNTIMES)
def test_python_runtime_runs_the_handler(lambda_client, python_functions, runtime):
    from conftest import wait_active

    name = python_functions[runtime]
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {"runtime": runtime})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload == {"runtime": runtime}

    resp, ctx = invoke_json(lambda_client, name, {"action": "context"})
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == "128"
    assert ctx["aws_request_id"] == request_id(resp)
    assert ctx["invoked_function_arn"] == arn(name)
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert 0 < ctx["remaining_ms"] <= 3000

    _, env = invoke_json(lambda_client, name, {"action": "env"})
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert ctx["log_stream_name"] == env["AWS_LAMBDA_LOG_STREAM_NAME"]


@pytest.mark.parametrize("style", NODE_STYLES)
@pytest.mark.parametrize("runtime", NODE_RUNTIMES)
def test_node_runtime_runs_each_handler_style(lambda_client, node_functions, runtime, style):
    from conftest import wait_active

    name = node_functions[(runtime, style)]
    wait_active(lambda_client, name)
    event = {"runtime": runtime, "style": style, "list": [1, 2, 3]}
    resp, payload = invoke_json(lambda_client, name, event)
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload["style"] == style
    assert payload["event"] == event
    assert payload["count"] == 1
    ctx = payload["context"]
    assert ctx["functionName"] == name
    assert ctx["functionVersion"] == "$LATEST"
    assert ctx["memoryLimitInMB"] == "128"
    assert ctx["awsRequestId"] == request_id(resp)
    assert ctx["invokedFunctionArn"] == arn(name)
    assert ctx["logGroupName"] == f"/aws/lambda/{name}"
    assert re.match(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$", ctx["logStreamName"])
    assert 0 < ctx["remaining"] <= 3000
    assert payload["env"]["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert payload["env"]["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert payload["env"]["LAMBDA_TASK_ROOT"] == "/var/task"
    assert payload["env"]["_HANDLER"] == node_zip(style)[1]
    assert payload["cwd"] == "/var/task"

    # Warm: module state survives to the next invoke.
    _, again = invoke_json(lambda_client, name, {"second": True})
    assert again["count"] == 2
    assert again["event"] == {"second": True}


@pytest.mark.parametrize("style", NODE_STYLES)
def test_node_handler_error_is_reported_as_aws_does(lambda_client, node_functions, style):
    from conftest import wait_active

    name = node_functions[("nodejs20.x", style)]
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {"action": "error", "message": "node boom"})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Error"
    assert payload["errorMessage"] == "node boom"
    assert isinstance(payload["trace"], list) and payload["trace"][0] == "Error: node boom"
    # And the environment keeps serving.
    resp, payload = invoke_json(lambda_client, name, {"after": "error"})
    assert "FunctionError" not in resp and payload["event"] == {"after": "error"}


@pytest.mark.parametrize("runtime", ["provided", "nodejs16.x"])
def test_retired_runtimes_are_deprecated_for_new_functions(lambda_client, runtime):
    # AWS blocks creating functions on the retired `provided` (Amazon Linux 1) runtime, and on
    # nodejs16.x (still in the model's enum; past its block dates), with the message it uses for
    # every deprecated runtime (recorded for dotnetcore3.1).
    import botocore.exceptions

    from conftest import client_error

    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_function(lambda_client, unique_name("retired"), runtime=runtime,
                        handler="function.handler", zip_bytes=provided_zip("python"), wait=False)
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidParameterValueException")
    assert err["message"] == (
        f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS "
        "Lambda functions. We recommend you use a supported runtime while creating or updating "
        "functions.")


@pytest.mark.parametrize("runtime", PROVIDED_RUNTIMES)
def test_provided_runtime_runs_the_bootstrap(lambda_client, runtime):
    name = unique_name(runtime.replace(".", ""))
    create_function(lambda_client, name, runtime=runtime, handler="function.handler",
                    zip_bytes=provided_zip("python"))
    event = {"runtime": runtime, "n": 1}
    resp, payload = invoke_json(lambda_client, name, event)
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert resp["ExecutedVersion"] == "$LATEST"
    assert payload["event"] == event
    assert payload["count"] == 1
    headers = payload["headers"]
    assert headers["lambda-runtime-aws-request-id"] == request_id(resp)
    assert headers["lambda-runtime-invoked-function-arn"] == arn(name)
    assert int(headers["lambda-runtime-deadline-ms"]) > 0
    env = payload["env"]
    assert env["_HANDLER"] == "function.handler"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert re.match(r"^[^:/]+:\d+$", env["AWS_LAMBDA_RUNTIME_API"])
    assert payload["cwd"] == "/var/task"

    _, again = invoke_json(lambda_client, name, {"n": 2})
    assert again["count"] == 2, "the bootstrap process should be reused while warm"


def test_provided_runtime_error_endpoint_gives_function_error(lambda_client):
    name = unique_name("provided-error")
    create_function(lambda_client, name, runtime="provided.al2023", handler="function.handler",
                    zip_bytes=provided_zip("python"))
    resp, payload = invoke_json(lambda_client, name, {"action": "error", "message": "custom"})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {"errorMessage": "custom", "errorType": "CustomRuntimeError",
                       "stackTrace": ["bootstrap.py: main"]}
    resp, payload = invoke_json(lambda_client, name, {"after": "error"})
    assert "FunctionError" not in resp and payload["event"] == {"after": "error"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="the shell bootstrap needs curl")
def test_shell_and_curl_bootstrap_like_the_aws_tutorial(lambda_client):
    name = unique_name("shell")
    create_function(lambda_client, name, runtime="provided.al2023", handler="function.handler",
                    zip_bytes=provided_zip("shell"))
    resp, payload = invoke_json(lambda_client, name, {"from": "shell"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload == {"shell": True, "event": {"from": "shell"}}
    _, payload = invoke_json(lambda_client, name, {"again": 1})
    assert payload == {"shell": True, "event": {"again": 1}}


def test_provided_zip_without_bootstrap_fails_to_invoke_cleanly(lambda_client):
    from conftest import make_zip

    name = unique_name("nobootstrap")
    create_function(lambda_client, name, runtime="provided.al2023", handler="x.y",
                    zip_bytes=make_zip({"readme.txt": "no bootstrap here"}))
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.InvalidEntrypoint", payload


@pytest.mark.skipif(shutil.which("curl") is None, reason="the shell bootstrap needs curl")
def test_a_custom_runtime_can_live_in_a_layer(lambda_client):
    # Lambda looks for /var/task/bootstrap, then /opt/bootstrap: a runtime shipped as a layer
    # serves functions whose zip holds only their handler.
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("shell-runtime"),
        Content={"ZipFile": make_zip({"bootstrap": (fixture_text("provided/bootstrap.sh"), 0o755)})},
        CompatibleRuntimes=["provided.al2023"],
    )
    name = unique_name("layer-runtime")
    create_function(lambda_client, name, runtime="provided.al2023", handler="function.handler",
                    zip_bytes=make_zip({"function.sh": (fixture_text("provided/function.sh"), 0o755)}),
                    Layers=[layer["LayerVersionArn"]])
    resp, payload = invoke_json(lambda_client, name, {"from": "layer"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload == {"shell": True, "event": {"from": "layer"}}


@pytest.mark.parametrize("runtime, expected", [
    ("nodejs18.x", "/var/runtime/ca-cert.pem"),
    ("nodejs20.x", None),
])
def test_nodejs18_trusts_extra_cas_from_the_runtime_dir_as_aws_does(lambda_client, runtime,
                                                                     expected):
    """Recorded (test_introspection_invoke[nodejs18.x]): only nodejs18.x has
    NODE_EXTRA_CA_CERTS=/var/runtime/ca-cert.pem; the file is there, so Node does not warn."""
    import base64

    name = unique_name("nodeca")
    code = ("const fs = require('fs');\n"
            "exports.handler = async () => {\n"
            "  const p = process.env.NODE_EXTRA_CA_CERTS || null;\n"
            "  return {path: p, readable: p ? fs.existsSync(p) : null};\n"
            "};\n")
    create_function(lambda_client, name, runtime=runtime, handler="index.handler",
                    zip_bytes=make_zip({"index.js": code}))
    resp, payload = invoke_json(lambda_client, name, {}, LogType="Tail")
    assert payload == {"path": expected, "readable": True if expected else None}
    log = base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")
    assert "Ignoring extra certs" not in log, log
