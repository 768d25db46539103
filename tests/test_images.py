"""Container image functions (`PackageType: Image`), end to end: images built here without
Docker (tests/oci_images.py), pushed to a real registry (Debian's docker-registry, started by the
fixture on a free port), pulled by a real `flint serve`, run in their own root filesystem.

The program in the images is the lambda_runtime fixture (tests/fixtures/rust-bootstrap) with the
shared libraries it loads; `{"probe": [...]}` makes it answer with its argv, working directory
and the named environment variables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import (FIXTURES, REPO, ROLE, FlintServer, client_error, free_port, invoke_json,
                      unique_name, wait_active)
# awslambdaric vendored with `pip install --target` (the Python base image's runtime client).
from test_official_clients import awslambdaric_dir  # noqa: F401
# The lambda-extension crate's extension (tests/fixtures/rust-bootstrap/src/bin/extension.rs).
from test_extensions import rust_extension  # noqa: F401
from oci_images import (AWS_BASE_ENV, LAMBDA_ENTRYPOINT, Registry, TokenServer, digest,
                        directory, file, host_program, host_tree, layer, shared_libraries,
                        symlink)

FIXTURE_TARGET = REPO / "target" / "fixtures"

if not (Path("/usr/bin/docker-registry").exists()):
    pytest.skip("docker-registry not installed (apt-get install docker-registry; .ci/run does)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry"), free_port())
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def bootstrap() -> Path:
    """The lambda_runtime fixture binary, (re)built in its own target dir."""
    override = os.environ.get("FLINT_RUST_BOOTSTRAP")
    if override:
        return Path(override)
    env = dict(os.environ, CARGO_TARGET_DIR=str(FIXTURE_TARGET))
    subprocess.run(["cargo", "build", "--release", "--manifest-path",
                    str(FIXTURES / "rust-bootstrap" / "Cargo.toml")],
                   cwd=REPO, env=env, check=True)
    return FIXTURE_TARGET / "release" / "bootstrap"


def base_layer() -> list:
    """What every test image has: the usr-merge symlinks (entries below go through them)."""
    return [directory("usr/lib"), directory("usr/lib64"), directory("usr/bin"),
            symlink("lib", "usr/lib"), symlink("lib64", "usr/lib64"), symlink("bin", "usr/bin"),
            directory("tmp", 0o1777)]


def rust_image(registry: Registry, bootstrap: Path, repo: str, tag: str, image_var: str,
               architecture: str = "amd64"):
    """An image whose ENTRYPOINT is a binary embedding the runtime interface client."""
    layers = [layer(base_layer()),
              layer(host_program(str(bootstrap), "app/bootstrap"))]
    return registry.push_image(repo, tag, layers, entrypoint=["/app/bootstrap"],
                               working_dir="/app",
                               env=["PATH=/usr/bin:/bin", f"IMAGE_VAR={image_var}"],
                               architecture=architecture)


def create_image_function(client, name: str, uri: str, wait: bool = True, **extra) -> dict:
    resp = client.create_function(FunctionName=name, Role=ROLE, PackageType="Image",
                                  Code={"ImageUri": uri}, **extra)
    if wait:
        wait_active(client, name, timeout=60)
    return resp


def probe(client, name: str, *names: str) -> dict:
    resp, payload = invoke_json(client, name, {"probe": list(names)})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    return payload


def wait_state(client, name: str, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        conf = client.get_function_configuration(FunctionName=name)
        if predicate(conf):
            return conf
        assert time.monotonic() < deadline, conf
        time.sleep(0.05)


@pytest.fixture(scope="module")
def rust_repo(registry, bootstrap):
    repo = f"rust-{uuid.uuid4().hex[:8]}"
    rust_image(registry, bootstrap, repo, "v1", "v1")
    return f"{registry.host}/{repo}"


def test_an_image_with_its_own_runtime_client_runs_in_its_own_root(lambda_client, rust_repo):
    name = unique_name("img")
    created = create_image_function(lambda_client, name, f"{rust_repo}:v1", wait=False)
    assert created["PackageType"] == "Image"
    assert created["State"] == "Pending"
    assert "Handler" not in created and "Runtime" not in created
    wait_active(lambda_client, name, timeout=60)

    p = probe(lambda_client, name, "IMAGE_VAR", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT")
    assert p["args"] == ["/app/bootstrap"]
    assert p["cwd"] == "/app"
    assert p["env"]["IMAGE_VAR"] == "v1"
    assert p["env"]["AWS_LAMBDA_RUNTIME_API"]
    resp, payload = invoke_json(lambda_client, name, {"hello": "image"})
    assert payload["event"] == {"hello": "image"} and payload["function_name"] == name
    assert payload["count"] == 2, "the warm environment is reused"

    got = lambda_client.get_function(FunctionName=name)
    code = got["Code"]
    assert code["RepositoryType"] == "ECR"
    assert code["ImageUri"] == f"{rust_repo}:v1"
    repo_part, digest = code["ResolvedImageUri"].split("@sha256:")
    assert repo_part == rust_repo
    assert got["Configuration"]["CodeSha256"] == digest
    assert got["Configuration"]["PackageType"] == "Image"
    assert "ImageConfigResponse" not in got["Configuration"]


def test_the_image_root_is_read_only_and_tmp_is_writable(lambda_client, registry, bootstrap):
    # The shell is dash from the host (with its libs): ENTRYPOINT is overridden to a script that
    # tries both, then execs the runtime client.
    repo = f"sh-{uuid.uuid4().hex[:8]}"
    script = ("( : > /app/x ) 2>/dev/null && export ROOT_WRITE=yes || export ROOT_WRITE=no; "
              ": > /tmp/y && export TMP_WRITE=yes; exec /app/bootstrap")
    layers = [layer(base_layer()),
              layer(host_program(str(bootstrap), "app/bootstrap")
                    + host_program("/usr/bin/dash", "usr/bin/dash")
                    + [symlink("usr/bin/sh", "dash")])]
    registry.push_image(repo, "latest", layers, entrypoint=["/bin/sh", "-c", script],
                        env=["PATH=/usr/bin:/bin"])
    name = unique_name("img-ro")
    create_image_function(lambda_client, name, f"{registry.host}/{repo}:latest")
    p = probe(lambda_client, name, "ROOT_WRITE", "TMP_WRITE")
    assert p["env"] == {"ROOT_WRITE": "no", "TMP_WRITE": "yes"}
    assert p["cwd"] == "/", "no WorkingDir: the root"


def test_an_aws_base_image_shaped_image_runs_unmodified(lambda_client, registry, bootstrap):
    """Shaped as public.ecr.aws/lambda/provided: ENTRYPOINT /lambda-entrypoint.sh (AWS's script),
    CMD the handler, the runtime at /var/runtime/bootstrap, the base images' ENV and WORKDIR."""
    repo = f"provided-{uuid.uuid4().hex[:8]}"
    base = base_layer() + host_program("/usr/bin/dash", "usr/bin/dash") + [
        symlink("usr/bin/sh", "dash"),
        file("lambda-entrypoint.sh", LAMBDA_ENTRYPOINT, 0o755),
        directory("var/task"), directory("var/runtime"), directory("opt"),
    ]
    function = host_program(str(bootstrap), "var/runtime/bootstrap") + [
        file("var/task/function.txt", "the function's files"),
    ]
    registry.push_image(repo, "latest", [layer(base), layer(function)],
                        entrypoint=["/lambda-entrypoint.sh"], cmd=["function.handler"],
                        working_dir="/var/task", env=AWS_BASE_ENV)
    name = unique_name("img-aws")
    create_image_function(lambda_client, name, f"{registry.host}/{repo}:latest")
    p = probe(lambda_client, name, "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ")
    assert p["args"] == ["/var/runtime/bootstrap"]
    assert p["cwd"] == "/var/task"
    assert p["env"] == {"_HANDLER": "function.handler", "LAMBDA_TASK_ROOT": "/var/task",
                        "LAMBDA_RUNTIME_DIR": "/var/runtime", "TZ": ":/etc/localtime"}


def test_an_images_own_extensions_start_before_its_function(lambda_client, registry, bootstrap,
                                                            rust_extension, callback_server):
    """An image's /opt/extensions run as a layer's do (with the image's own bash to start them):
    AWS's lambda-extension crate registers and gets the invocation."""
    repo = f"ext-{uuid.uuid4().hex[:8]}"
    layers = [layer(base_layer() + host_program("/usr/bin/bash", "usr/bin/bash")),
              layer(host_program(str(rust_extension), "opt/extensions/rust-recorder")),
              layer(host_program(str(bootstrap), "app/bootstrap"))]
    registry.push_image(repo, "v1", layers, entrypoint=["/app/bootstrap"], working_dir="/app",
                        env=["PATH=/usr/bin:/bin"])
    name = unique_name("img-ext")
    create_image_function(lambda_client, name, f"{registry.host}/{repo}:v1", Timeout=10,
                          Environment={"Variables": {"RECORDER_URL": callback_server.url,
                                                     "EXT_TELEMETRY_PORT": str(free_port())}})
    resp, payload = invoke_json(lambda_client, name, {"probe": []})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    rid = resp["ResponseMetadata"]["RequestId"]
    assert callback_server.wait_for(lambda b: '"INVOKE"' in b and rid in b, timeout=30), \
        "the image's extension never got the invocation"


def test_image_config_overrides_entrypoint_command_and_working_directory(lambda_client,
                                                                         rust_repo):
    name = unique_name("img-cfg")
    image_config = {"EntryPoint": ["/app/bootstrap", "from-entrypoint"],
                    "Command": ["from-command"], "WorkingDirectory": "/tmp"}
    created = create_image_function(lambda_client, name, f"{rust_repo}:v1",
                                    ImageConfig=image_config,
                                    Environment={"Variables": {"IMAGE_VAR": "from-function"}})
    assert created["ImageConfigResponse"] == {"ImageConfig": image_config}
    p = probe(lambda_client, name, "IMAGE_VAR", "_HANDLER")
    assert p["args"] == ["/app/bootstrap", "from-entrypoint", "from-command"]
    assert p["cwd"] == "/tmp"
    assert p["env"]["IMAGE_VAR"] == "from-function", "the function's variables win"
    assert p["env"]["_HANDLER"] == "from-command"

    # An empty ImageConfig removes the overrides (AWS then omits ImageConfigResponse).
    updated = lambda_client.update_function_configuration(FunctionName=name, ImageConfig={})
    assert "ImageConfigResponse" not in updated
    wait_active(lambda_client, name, timeout=60)
    p = probe(lambda_client, name)
    assert p["args"] == ["/app/bootstrap"] and p["cwd"] == "/app"


def test_an_image_index_gives_the_functions_architecture(lambda_client, registry, bootstrap):
    repo = f"multi-{uuid.uuid4().hex[:8]}"
    amd = rust_image(registry, bootstrap, repo, None, "amd64", "amd64")
    arm = rust_image(registry, bootstrap, repo, None, "arm64", "arm64")
    index_digest = registry.push_index(repo, "multi", [(*arm, "arm64"), (*amd, "amd64")])
    registry.push_index(repo, "amd-only", [(*amd, "amd64")])
    uri = f"{registry.host}/{repo}"

    name = unique_name("img-multi")
    create_image_function(lambda_client, name, f"{uri}:multi")
    assert probe(lambda_client, name, "IMAGE_VAR")["env"]["IMAGE_VAR"] == "amd64"
    code = lambda_client.get_function(FunctionName=name)["Code"]
    assert code["ResolvedImageUri"] == f"{uri}@{index_digest}"

    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as e:
        create_image_function(lambda_client, unique_name("img-arm"), f"{uri}:amd-only",
                              Architectures=["arm64"])
    assert f"{uri}:amd-only" in client_error(e)["message"]


def test_update_function_code_to_a_new_tag_resolves_it_again(lambda_client, registry,
                                                              bootstrap):
    repo = f"upd-{uuid.uuid4().hex[:8]}"
    rust_image(registry, bootstrap, repo, "v1", "one")
    rust_image(registry, bootstrap, repo, "v2", "two")
    uri = f"{registry.host}/{repo}"
    name = unique_name("img-upd")
    create_image_function(lambda_client, name, f"{uri}:v1")
    assert probe(lambda_client, name, "IMAGE_VAR")["env"]["IMAGE_VAR"] == "one"
    before = lambda_client.get_function(FunctionName=name)

    updated = lambda_client.update_function_code(FunctionName=name, ImageUri=f"{uri}:v2")
    assert updated["LastUpdateStatus"] == "InProgress"
    wait_active(lambda_client, name, timeout=60)
    assert probe(lambda_client, name, "IMAGE_VAR")["env"]["IMAGE_VAR"] == "two"
    after = lambda_client.get_function(FunctionName=name)
    assert after["Code"]["ImageUri"] == f"{uri}:v2"
    assert after["Code"]["ResolvedImageUri"] != before["Code"]["ResolvedImageUri"]
    assert after["Configuration"]["CodeSha256"] != before["Configuration"]["CodeSha256"]

    # AWS's recorded answer to a zip for an Image function.
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as e:
        lambda_client.update_function_code(FunctionName=name, ZipFile=b"PK")
    assert client_error(e)["message"] == \
        "Please provide ImageUri when updating a function with packageType Image."


def test_a_missing_image_or_tag_is_refused_as_aws_does(lambda_client, rust_repo, registry):
    for uri in (f"{rust_repo}:no-such-tag", f"{registry.host}/no-such-repo:latest"):
        with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as e:
            create_image_function(lambda_client, unique_name("img-missing"), uri)
        assert client_error(e)["message"] == \
            f"Source image {uri} does not exist. Provide a valid source image."


def test_image_functions_refuse_zip_only_members(lambda_client, rust_repo):
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as e:
        create_image_function(lambda_client, unique_name("img-bad"), f"{rust_repo}:v1",
                              Handler="index.handler", Runtime="python3.12")
    assert client_error(e)["message"] == ("Please don't provide Handler or Runtime or Layer "
                                          "when the intended function PackageType is Image.")


def test_a_layer_escaping_the_root_fails_the_function(lambda_client, registry, server):
    repo = f"evil-{uuid.uuid4().hex[:8]}"
    marker = f"escaped-{uuid.uuid4().hex[:8]}"
    evil = layer(base_layer() + [file(f"../../../../../../tmp/{marker}", "gotcha")])
    registry.push_image(repo, "latest", [evil], entrypoint=["/app/bootstrap"])
    name = unique_name("img-evil")
    created = create_image_function(lambda_client, name, f"{registry.host}/{repo}:latest",
                                    wait=False)
    assert created["State"] == "Pending"
    conf = wait_state(lambda_client, name, lambda c: c["State"] != "Pending")
    assert conf["State"] == "Failed"
    assert conf["StateReasonCode"] == "InvalidImage"
    assert "escapes the image root" in conf["StateReason"]
    assert not Path(f"/tmp/{marker}").exists()
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.invoke(FunctionName=name, Payload=b"{}")


def test_an_image_no_function_uses_is_removed(lambda_client, registry, bootstrap, server):
    repo = f"gc-{uuid.uuid4().hex[:8]}"
    manifest_digest, _ = rust_image(registry, bootstrap, repo, "latest", f"gc-{repo}")
    unpacked = server.data_dir / "images" / manifest_digest.replace(":", "-")
    first, second = unique_name("img-gc"), unique_name("img-gc")
    for name in (first, second):
        create_image_function(lambda_client, name, f"{registry.host}/{repo}:latest")
    assert (unpacked / "rootfs" / "app" / "bootstrap").is_file(), "pulled once, shared"

    # DeleteFunction answers once the collection it starts is done.
    lambda_client.delete_function(FunctionName=first)
    assert unpacked.exists(), "still used by the second function"
    lambda_client.delete_function(FunctionName=second)
    assert not unpacked.exists(), "no function uses it any more"


def test_an_image_deleted_before_it_is_pulled_fails_the_function(lambda_client, registry,
                                                                  bootstrap):
    repo = f"deleted-{uuid.uuid4().hex[:8]}"
    layers = [layer(base_layer()), layer(host_program(str(bootstrap), "app/bootstrap"))]
    registry.push_image(repo, "latest", layers, entrypoint=["/app/bootstrap"],
                        env=[f"UNIQUE={repo}"])
    # The manifest resolves, but a layer is gone by the time Flint pulls it.
    registry.delete_blob(repo, digest(layers[1]))
    name = unique_name("img-deleted")
    created = create_image_function(lambda_client, name, f"{registry.host}/{repo}:latest",
                                    wait=False)
    assert created["State"] == "Pending"
    conf = wait_state(lambda_client, name, lambda c: c["State"] != "Pending")
    assert (conf["State"], conf["StateReasonCode"]) == ("Failed", "ImageDeleted")


def test_a_private_registry_is_pulled_with_docker_login_credentials(tmp_path, flint_bin,
                                                                    bootstrap, lambda_client):
    reg = Registry(tmp_path / "registry", free_port(), credentials=("flint", "s3cret"))
    try:
        first_digest, _ = rust_image(reg, bootstrap, "private", "v1", "private")
        uri = f"{reg.host}/private:v1"
        # A server whose Docker config holds the registry's credentials (as `docker login`).
        srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint.log",
                          extra_env={"DOCKER_CONFIG": str(reg.docker_config(tmp_path / "docker"))})
        srv.start()
        try:
            client = srv.client()
            name = unique_name("img-private")
            create_image_function(client, name, uri)
            assert probe(client, name, "IMAGE_VAR")["env"]["IMAGE_VAR"] == "private"

            # After a restart: the image is still here (no pull), and the credentials now come
            # from a credential helper (`credHelpers`, as amazon-ecr-credential-helper is set up).
            srv.stop()
            helpers = tmp_path / "helpers"
            helpers.mkdir()
            helper = helpers / "docker-credential-flinttest"
            helper.write_text('#!/bin/sh\nread registry\n'
                              'echo "{\\"Username\\":\\"flint\\",\\"Secret\\":\\"s3cret\\"}"\n')
            helper.chmod(0o755)
            (tmp_path / "docker" / "config.json").write_text(
                json.dumps({"credHelpers": {reg.host: "flinttest"}}))
            srv.extra_env["PATH"] = f"{helpers}:{os.environ['PATH']}"
            # And the data dir comes back without its image cache: pulled again at start.
            shutil.rmtree(tmp_path / "data" / "images")
            srv.start()
            unpacked = tmp_path / "data" / "images" / first_digest.replace(":", "-")
            deadline = time.monotonic() + 60
            while not (unpacked / "config.json").exists():
                assert time.monotonic() < deadline, srv.log_tail()
                time.sleep(0.05)
            assert probe(client, name, "IMAGE_VAR")["env"]["IMAGE_VAR"] == "private"
            rust_image(reg, bootstrap, "private", "v2", "private-two")
            other = unique_name("img-private")
            create_image_function(client, other, f"{reg.host}/private:v2")
            assert probe(client, other, "IMAGE_VAR")["env"]["IMAGE_VAR"] == "private-two"
        finally:
            srv.stop()
        # The suite's server has no credentials for it.
        with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as e:
            create_image_function(lambda_client, unique_name("img-denied"), uri)
        assert "does not have permission to access the image" in client_error(e)["message"]
    finally:
        reg.stop()


PYTHON = "/usr/bin/python3.11"
# As public.ecr.aws/lambda/python's /var/runtime/bootstrap: the runtime interface client
# (awslambdaric) on the image's Python, the handler from _HANDLER.
PYTHON_BOOTSTRAP = """#!/bin/sh
export AWS_EXECUTION_ENV=AWS_Lambda_python3.11
export PYTHONPATH=/var/runtime
exec /var/lang/bin/python3.11 -m awslambdaric "$_HANDLER"
"""
PYTHON_HANDLER = """import os, sys

def handler(event, context):
    return {"event": event, "handler": os.environ["_HANDLER"], "cwd": os.getcwd(),
            "python": sys.version_info[:2], "request_id": context.aws_request_id,
            "task_root": os.environ["LAMBDA_TASK_ROOT"]}
"""


@pytest.mark.skipif(not Path(PYTHON).exists(), reason=f"{PYTHON} not installed")
def test_a_python_base_image_shaped_image_runs_its_runtime_interface_client(
        lambda_client, registry, awslambdaric_dir):
    """Shaped as public.ecr.aws/lambda/python:3.11: /lambda-entrypoint.sh, a /var/runtime/bootstrap
    running awslambdaric (AWS's Python runtime interface client, unmodified) on the image's own
    Python (the host's, with its standard library and shared libraries), the handler in /var/task."""
    ric = awslambdaric_dir / "awslambdaric"
    stdlib = "/usr/lib/python3.11"
    dynload = [str(p) for p in Path(stdlib, "lib-dynload").glob("*.so")]
    runtime_client = [str(p) for p in ric.parent.rglob("*.so")]
    base = (base_layer() + host_program("/usr/bin/dash", "usr/bin/dash")
            + [symlink("usr/bin/sh", "dash"),
               file("lambda-entrypoint.sh", LAMBDA_ENTRYPOINT, 0o755),
               directory("var/task"), directory("opt")])
    python = (host_program(PYTHON, "usr/bin/python3.11")
              + shared_libraries(dynload + runtime_client)
              + host_tree(stdlib, "usr/lib/python3.11",
                          skip=("test", "idlelib", "tkinter", "turtledemo", "ensurepip",
                                "lib2to3", "pydoc_data", "config-3.11-x86_64-linux-gnu"))
              + [directory("var/lang/bin"), symlink("var/lang/bin/python3.11", "/usr/bin/python3.11")]
              + host_tree(str(ric.parent), "var/runtime")
              + [file("var/runtime/bootstrap", PYTHON_BOOTSTRAP, 0o755)])
    function = [file("var/task/app.py", PYTHON_HANDLER)]
    repo = f"python-{uuid.uuid4().hex[:8]}"
    registry.push_image(repo, "latest", [layer(base), layer(python), layer(function)],
                        entrypoint=["/lambda-entrypoint.sh"], cmd=["app.handler"],
                        working_dir="/var/task", env=AWS_BASE_ENV)
    name = unique_name("img-python")
    create_image_function(lambda_client, name, f"{registry.host}/{repo}:latest", Timeout=10)
    resp, payload = invoke_json(lambda_client, name, {"hello": "python"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload == {"event": {"hello": "python"}, "handler": "app.handler",
                       "cwd": "/var/task", "python": [3, 11],
                       "request_id": resp["ResponseMetadata"]["RequestId"],
                       "task_root": "/var/task"}


def test_a_registry_with_bearer_token_auth_is_pulled_with_a_token(tmp_path, flint_bin,
                                                                  bootstrap):
    """Docker Hub's / ECR's flow: 401 with `WWW-Authenticate: Bearer realm=…`, the credentials
    exchanged at the realm for a token scoped to the repository."""
    credentials = ("flint", "t0ken")
    tokens = TokenServer(tmp_path, free_port(), credentials)
    reg = Registry(tmp_path / "registry", free_port(), credentials, token_server=tokens)
    try:
        rust_image(reg, bootstrap, "tokened", "v1", "tokened")
        issued_to_tests = tokens.issued
        srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint.log",
                          extra_env={"DOCKER_CONFIG": str(reg.docker_config(tmp_path / "docker"))})
        srv.start()
        try:
            client = srv.client()
            name = unique_name("img-token")
            create_image_function(client, name, f"{reg.host}/tokened:v1")
            assert probe(client, name, "IMAGE_VAR")["env"]["IMAGE_VAR"] == "tokened"
            assert tokens.issued > issued_to_tests, "Flint asked the realm for a token"
        finally:
            srv.stop()
    finally:
        reg.stop()
        tokens.stop()
