"""What a user types: the AWS CLI driving create-function, `wait function-active-v2` and invoke
against Flint, and Flint's own commands (`flint serve --help`, `flint runtimes`, `flint logs`)."""

import json
import os
import subprocess
import threading
import time
import uuid

import pytest

from conftest import aws_cli, invoke_json, python_zip, request_id, unique_name


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """An environment like a user's shell: credentials in variables, a config file with the
    region and the v2 binary format (harmless for the v1 CLI), nothing from this machine."""
    home = tmp_path_factory.mktemp("cli-home")
    config = home / "config"
    config.write_text("[default]\nregion = us-east-1\ncli_binary_format = raw-in-base64-out\n"
                      "output = json\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_PAGER": "",
    })
    return env


def run(cmd, env=None, cwd=None, timeout=60, check=True):
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}\nstdout: {result.stdout}\n"
                             f"stderr: {result.stderr}")
    return result


def test_aws_cli_create_wait_invoke(server, cli_env, tmp_path):
    aws = aws_cli()
    assert aws, "the AWS CLI is part of tests/requirements.txt"
    (tmp_path / "fn.zip").write_bytes(python_zip())
    name = unique_name("cli")
    base = [aws, "--endpoint-url", server.endpoint, "lambda"]

    created = json.loads(run(base + [
        "create-function", "--function-name", name, "--runtime", "python3.11",
        "--handler", "index.handler", "--zip-file", "fileb://fn.zip",
        "--role", "arn:aws:iam::000000000000:role/lambda"], env=cli_env, cwd=tmp_path).stdout)
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"

    run(base + ["wait", "function-active-v2", "--function-name", name], env=cli_env, timeout=120)

    got = json.loads(run(base + ["get-function", "--function-name", name], env=cli_env).stdout)
    assert got["Configuration"]["State"] == "Active"

    out = tmp_path / "out.json"
    result = json.loads(run(base + [
        "invoke", "--function-name", name, "--payload", '{"name": "flint"}', str(out)],
        env=cli_env).stdout)
    assert result["StatusCode"] == 200
    assert result["ExecutedVersion"] == "$LATEST"
    assert json.loads(out.read_text()) == {"name": "flint"}

    listed = json.loads(run(base + ["list-functions"], env=cli_env).stdout)
    assert name in [f["FunctionName"] for f in listed["Functions"]]

    run(base + ["delete-function", "--function-name", name], env=cli_env)
    missing = run(base + ["get-function", "--function-name", name], env=cli_env, check=False)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
    assert f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{name}" \
        in missing.stderr


def test_flint_help_lists_the_commands(flint_bin):
    out = run([str(flint_bin), "--help"]).stdout
    for command in ("serve", "runtimes", "logs"):
        assert command in out


def test_flint_serve_defaults_are_documented(flint_bin):
    out = run([str(flint_bin), "serve", "--help"]).stdout
    assert "127.0.0.1:9000" in out
    assert ".flint" in out


def test_flint_serve_refuses_a_public_address_without_credentials(flint_bin, tmp_path):
    result = run([str(flint_bin), "serve", "--listen", "0.0.0.0:0", "--data-dir",
                  str(tmp_path / "data")], check=False, timeout=30)
    assert result.returncode != 0
    assert "--credentials-file" in result.stderr


def test_flint_runtimes_lists_the_runtime_ids(flint_bin):
    out = run([str(flint_bin), "runtimes"]).stdout
    lines = out.splitlines()
    assert lines and lines[0].startswith("RUNTIME")
    listed = {line.split()[0] for line in lines[1:] if line.strip()}
    for runtime in ("python3.11", "python3.12", "nodejs18.x", "nodejs20.x", "nodejs22.x",
                    "provided", "provided.al2", "provided.al2023"):
        assert runtime in listed, out


def flint_logs(flint_bin, server, name, timeout=10, wanted=()):
    """`flint logs NAME`, retried until every string in `wanted` shows (logs are written as the
    function runs, so the last lines may land a moment after the invoke returns)."""
    deadline = time.monotonic() + timeout
    while True:
        result = run([str(flint_bin), "logs", name, "--data-dir", str(server.data_dir)],
                     check=False)
        if result.returncode == 0 and all(w in result.stdout for w in wanted):
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"flint logs never showed {wanted}: rc={result.returncode}\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        time.sleep(0.2)


def test_flint_logs_prints_a_functions_log(flint_bin, server, lambda_client, python_fn):
    marker = f"log-marker-{uuid.uuid4().hex}"
    resp, _ = invoke_json(lambda_client, python_fn, {"action": "print", "text": marker})
    rid = request_id(resp)
    out = flint_logs(flint_bin, server, python_fn,
                     wanted=(marker, f"REPORT RequestId: {rid}"))
    assert f"START RequestId: {rid} Version: $LATEST" in out
    assert f"END RequestId: {rid}" in out
    assert out.index(f"START RequestId: {rid}") < out.index(marker) \
        < out.index(f"END RequestId: {rid}")


def test_flint_logs_of_an_unknown_function_fails(flint_bin, server):
    result = run([str(flint_bin), "logs", unique_name("nologs"), "--data-dir",
                  str(server.data_dir)], check=False)
    assert result.returncode != 0


def test_flint_logs_follow_prints_new_lines(flint_bin, server, lambda_client, python_fn):
    before = f"before-marker-{uuid.uuid4().hex}"
    invoke_json(lambda_client, python_fn, {"action": "print", "text": before})
    flint_logs(flint_bin, server, python_fn, wanted=[before])
    proc = subprocess.Popen(
        [str(flint_bin), "logs", python_fn, "--follow", "--data-dir", str(server.data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    printed_existing = threading.Event()
    found = threading.Event()
    marker = f"follow-marker-{uuid.uuid4().hex}"

    def reader():
        for line in proc.stdout:
            seen.append(line)
            if before in line:
                printed_existing.set()
            if marker in line:
                found.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        # What exists is printed, then it follows.
        assert printed_existing.wait(10), "".join(seen[-20:])
        invoke_json(lambda_client, python_fn, {"action": "print", "text": marker})
        assert found.wait(10), "".join(seen[-20:])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
