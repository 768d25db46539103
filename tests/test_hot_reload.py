"""Hot reload, LocalStack's convention: `S3Bucket: "hot-reload"` with `S3Key` = an absolute
directory on the Flint host mounts that directory read-only at /var/task (a layer's at /opt)
instead of a copy; a change under it retires the environments mounting it, so the next invoke
loads the edited files. GetFunction answers what LocalStack answers for such functions
(CodeSha256 "hot-reloading-hash-not-available", CodeSize 0, Code.Location file://DIR).

The suite's server runs without --credentials-file, where hot reload is on by default. Each edit
is followed by waiting for Flint's log line saying it retired the environments, then the invoke."""

import os
import time
from pathlib import Path

import botocore.exceptions
import pytest

from conftest import (
    ROLE,
    FlintServer,
    client_error,
    invoke_json,
    make_zip,
    unique_name,
    wait_active,
)

HOT = "hot-reload"


def hot_dir(session_tmp: Path, files: dict) -> Path:
    """A directory the sandbox user can read (the functions do not run as root)."""
    d = session_tmp / unique_name("hot")
    for rel, text in files.items():
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for root, dirs, names in os.walk(d):
        os.chmod(root, 0o755)
        for n in names:
            os.chmod(os.path.join(root, n), 0o644)
    return d


def wait_for_log(server, start: int, text: str, timeout: float = 15) -> None:
    """Waits until the server's log, from byte `start` on, contains `text`."""
    deadline = time.monotonic() + timeout
    while True:
        with open(server.log_path, "rb") as f:
            f.seek(start)
            if text.encode() in f.read():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the server log after {timeout}s")
        time.sleep(0.02)


def edit(server, directory: Path, rel: str, text: str) -> None:
    """Rewrites a file as an editor does, and waits for Flint to have retired the
    environments that mount `directory`."""
    start = server.log_size()
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o755)
    path.write_text(text)
    os.chmod(path, 0o644)
    wait_for_log(server, start, f"hot reload: {directory} changed")


def python_handler(answer: str) -> str:
    return f"def handler(event, context):\n    return {answer!r}\n"


def node_handler(answer: str) -> str:
    return f"exports.handler = async () => {answer!r};\n"


@pytest.mark.parametrize("runtime,filename,source", [
    ("python3.12", "index.py", python_handler),
    ("nodejs20.x", "index.js", node_handler),
])
def test_an_edit_shows_at_the_next_invoke(lambda_client, server, session_tmp,
                                          runtime, filename, source):
    d = hot_dir(session_tmp, {filename: source("first")})
    name = unique_name("hot")
    created = lambda_client.create_function(
        FunctionName=name, Runtime=runtime, Handler="index.handler", Role=ROLE,
        Code={"S3Bucket": HOT, "S3Key": str(d)})
    assert created["CodeSha256"] == "hot-reloading-hash-not-available"
    assert created["CodeSize"] == 0
    wait_active(lambda_client, name)
    got = lambda_client.get_function(FunctionName=name)
    assert got["Code"] == {"RepositoryType": "S3", "Location": f"file://{d}"}
    assert invoke_json(lambda_client, name, {})[1] == "first"
    # A warm environment would answer from the module it loaded: it must be gone.
    edit(server, d, filename, source("second"))
    assert invoke_json(lambda_client, name, {})[1] == "second"
    # A new file is seen too.
    edit(server, d, "extra/data.txt", "new file")
    assert invoke_json(lambda_client, name, {})[1] == "second"


BOOTSTRAP = '''#!/usr/bin/python3
import os, urllib.request
API = "http://%s/2018-06-01/runtime" % os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    with urllib.request.urlopen(API + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        r.read()
    urllib.request.urlopen(urllib.request.Request(
        API + "/invocation/%s/response" % rid, data=b'"ANSWER"', method="POST")).read()
'''


def test_a_rebuilt_bootstrap_runs_at_the_next_invoke(lambda_client, server, session_tmp):
    """`cargo lambda build`'s layout: target/lambda/<name>/bootstrap, replaced by each build
    (a stand-in bootstrap here: the Runtime API loop in Python)."""
    d = hot_dir(session_tmp, {})
    out = d / "target" / "lambda" / "my-fn"
    out.mkdir(parents=True)
    for p in (d / "target", d / "target" / "lambda", out):
        os.chmod(p, 0o755)

    def build(answer):
        tmp = out / ".bootstrap.tmp"
        tmp.write_text(BOOTSTRAP.replace("ANSWER", answer))
        os.chmod(tmp, 0o755)
        os.replace(tmp, out / "bootstrap")

    build("built once")
    name = unique_name("hotrust")
    lambda_client.create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=ROLE,
        Code={"S3Bucket": HOT, "S3Key": str(out)})
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "built once"
    start = server.log_size()
    build("built twice")
    wait_for_log(server, start, f"hot reload: {out} changed")
    assert invoke_json(lambda_client, name, {})[1] == "built twice"


def test_update_function_code_switches_between_zip_and_hot_reload(lambda_client, server,
                                                                  session_tmp):
    d = hot_dir(session_tmp, {"index.py": python_handler("hot")})
    name = unique_name("hotupd")
    lambda_client.create_function(
        FunctionName=name, Runtime="python3.12", Handler="index.handler", Role=ROLE,
        Code={"ZipFile": make_zip({"index.py": python_handler("zip")})})
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "zip"
    lambda_client.update_function_code(FunctionName=name, S3Bucket=HOT, S3Key=str(d))
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "hot"
    edit(server, d, "index.py", python_handler("hot again"))
    assert invoke_json(lambda_client, name, {})[1] == "hot again"


def test_a_hot_reloaded_layer_is_opt(lambda_client, server, session_tmp):
    d = hot_dir(session_tmp, {"python/hotlayer.py": "VALUE = 'layer one'\n"})
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("hotlayer"), Content={"S3Bucket": HOT, "S3Key": str(d)})
    assert layer["Content"]["CodeSha256"] == "hot-reloading-hash-not-available"
    assert layer["Content"]["Location"] == f"file://{d}"
    name = unique_name("hotlayerfn")
    lambda_client.create_function(
        FunctionName=name, Runtime="python3.12", Handler="index.handler", Role=ROLE,
        Code={"ZipFile": make_zip({"index.py": (
            "import hotlayer\n\ndef handler(event, context):\n    return hotlayer.VALUE\n")})},
        Layers=[layer["LayerVersionArn"]])
    wait_active(lambda_client, name)
    assert invoke_json(lambda_client, name, {})[1] == "layer one"
    edit(server, d, "python/hotlayer.py", "VALUE = 'layer two'\n")
    assert invoke_json(lambda_client, name, {})[1] == "layer two"


@pytest.mark.parametrize("key,message", [
    ("relative/dir", "When using hot reloading, the archive key has to be an absolute path! "
                     "Your archive key: relative/dir"),
    ("/nonexistent/flint-hot-reload", "When using hot reloading, the archive key has to be a "
                                      "directory on the Flint host! Your archive key: "
                                      "/nonexistent/flint-hot-reload"),
])
def test_a_relative_or_missing_directory_is_refused(lambda_client, key, message):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.create_function(
            FunctionName=unique_name("hotbad"), Runtime="python3.12", Handler="index.handler",
            Role=ROLE, Code={"S3Bucket": HOT, "S3Key": key})
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidParameterValueException")
    assert err["message"] == message


def test_flints_data_dir_cannot_be_mounted(lambda_client, server):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.create_function(
            FunctionName=unique_name("hotdata"), Runtime="python3.12", Handler="index.handler",
            Role=ROLE, Code={"S3Bucket": HOT, "S3Key": str(server.data_dir)})
    assert "Flint's data directory" in client_error(e)["message"]


def test_hot_reload_survives_a_restart_and_can_be_turned_off(flint_bin, tmp_path,
                                                             aws_services):
    """The directory is stored, watched again after a restart; `--hot-reload-bucket ''` makes
    `hot-reload` an ordinary bucket (here: missing from moto's S3)."""
    d = hot_dir(tmp_path, {"index.py": python_handler("before restart")})
    servers = []

    def start(*args):
        extra = list(FlintServer.HOST_NETWORK) + list(args)
        extra += ["--aws-endpoint-url", aws_services.endpoint]
        srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                          extra_args=extra, extra_env=aws_services.flint_env())
        servers.append(srv)
        srv.start()
        return srv

    try:
        first = start()
        client = first.client()
        name = unique_name("hotrestart")
        client.create_function(FunctionName=name, Runtime="python3.12",
                               Handler="index.handler", Role=ROLE,
                               Code={"S3Bucket": HOT, "S3Key": str(d)})
        wait_active(client, name)
        assert invoke_json(client, name, {})[1] == "before restart"
        first.stop()

        second = start()
        client = second.client()
        assert client.get_function(FunctionName=name)["Code"]["Location"] == f"file://{d}"
        assert invoke_json(client, name, {})[1] == "before restart"
        edit(second, d, "index.py", python_handler("after restart"))
        assert invoke_json(client, name, {})[1] == "after restart"
        second.stop()

        off = start("--hot-reload-bucket", "")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            off.client().create_function(
                FunctionName=unique_name("hotoff"), Runtime="python3.12",
                Handler="index.handler", Role=ROLE, Code={"S3Bucket": HOT, "S3Key": str(d)})
        assert "S3 Error Code: NoSuchBucket" in client_error(e)["message"]
    finally:
        for srv in servers:
            srv.stop()
