"""The execution environment a function sees: Lambda's reserved environment variables and the
function's own, /var/task read-only and the working directory, /tmp writable, its own PID
namespace, and no view of Flint's data dir."""

import errno
import re

from conftest import DEFAULT_ACCOUNT, REGION, invoke_json, request_id


def test_reserved_environment_variables_are_set(lambda_client, python_fn):
    _, env = invoke_json(lambda_client, python_fn, {"action": "env"})
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == python_fn
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_REGION"] == REGION
    assert env["AWS_DEFAULT_REGION"] == REGION
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["LAMBDA_RUNTIME_DIR"].startswith("/")
    assert env["_HANDLER"] == "index.handler"
    assert re.match(r"^[^:/]+:\d+$", env["AWS_LAMBDA_RUNTIME_API"]), env["AWS_LAMBDA_RUNTIME_API"]
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{python_fn}"
    assert re.match(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$",
                    env["AWS_LAMBDA_LOG_STREAM_NAME"]), env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["TZ"] == ":UTC"


def test_the_functions_own_variables_are_set(lambda_client, python_fn):
    _, env = invoke_json(lambda_client, python_fn, {"action": "env"})
    assert env["FLINT_TEST_VAR"] == "from-config"


def test_non_reserved_defaults_match_lambda(lambda_client, python_fn):
    _, env = invoke_json(lambda_client, python_fn, {"action": "env"})
    assert env["LANG"] == "en_US.UTF-8"
    path = env["PATH"].split(":")
    for entry in ("/usr/local/bin", "/bin", "/opt/bin"):
        assert entry in path, env["PATH"]
    assert "/usr/bin" in path or "/usr/bin/" in path, env["PATH"]


def test_flint_own_environment_does_not_leak_into_functions(lambda_client, python_fn):
    _, env = invoke_json(lambda_client, python_fn, {"action": "env"})
    leaked = [k for k in env if k.startswith(("FLINT_DATA", "RUST_LOG", "CARGO", "PYTEST"))]
    assert leaked == [], leaked


def test_sandbox_filesystem_and_processes(lambda_client, python_fn, server):
    data_dir = str(server.data_dir)
    _, found = invoke_json(lambda_client, python_fn, {
        "action": "sandbox",
        "host_paths": [data_dir, str(server.log_path), str(server.data_dir.parent)],
    })
    assert found["cwd"] == "/var/task"
    assert found["var_task_writable"] is False
    assert found["var_task_error"] in (errno.EROFS, errno.EACCES, errno.EPERM)
    assert found["tmp_roundtrip"] == "hello"
    assert found["task_files"] == ["index.py"], "/var/task holds exactly the zip's files"
    # Its own PID namespace: a handful of processes, not the host's.
    assert len(found["processes"]) <= 8, found["processes"]
    assert 1 in found["processes"]
    assert found["pid"] < 100
    # Flint's data dir (database, other functions' code) is out of sight.
    assert found["visible_host_paths"] == []


def test_context_object_python(lambda_client, python_fn):
    resp, ctx = invoke_json(lambda_client, python_fn, {"action": "context"})
    assert ctx["function_name"] == python_fn
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == "128"
    assert ctx["aws_request_id"] == request_id(resp)
    assert ctx["invoked_function_arn"] == \
        f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{python_fn}"
    assert ctx["log_group_name"] == f"/aws/lambda/{python_fn}"
    assert 0 < ctx["remaining_ms"] <= 3000


def test_each_invoke_gets_its_own_request_id(lambda_client, python_fn):
    ids = set()
    for _ in range(3):
        resp, ctx = invoke_json(lambda_client, python_fn, {"action": "context"})
        assert ctx["aws_request_id"] == request_id(resp)
        ids.add(ctx["aws_request_id"])
    assert len(ids) == 3
