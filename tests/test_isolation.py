"""What a function can see and touch: /var/task read-only, /tmp writable and private to its
execution environment, its own process namespace, none of the host's files (Flint's data dir,
/root, the host's /tmp), layers merged read-only at /opt (`python/` importable, `bin/` on PATH,
later layers over earlier ones), Lambda's environment variables, a non-root user, and Lambda's
rlimits."""

import concurrent.futures
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import (
    REGION,
    create_function,
    invoke_json,
    make_zip,
    unique_name,
)
from test_many_environments import Barrier

PROBE = '''
import errno, os, resource, socket, subprocess, sys, time


def try_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        os.remove(path)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def try_mkdir(path):
    try:
        os.mkdir(path)
        os.rmdir(path)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def handler(event, context):
    action = event["action"]
    if action == "writes":
        return {p: try_write(p) for p in event["files"]} | \\
            {p + "/": try_mkdir(p) for p in event["dirs"]}
    if action == "tmp_write":
        with open("/tmp/" + event["file"], "w") as f:
            f.write(event["content"])
        if "barrier" in event:
            # Wait at the test's barrier until the other invoke has written too.
            with socket.create_connection(("127.0.0.1", event["barrier"]), timeout=60) as s:
                s.recv(1)
        return {"listing": sorted(os.listdir("/tmp"))}
    if action == "tmp_read":
        path = "/tmp/" + event["file"]
        return {"exists": os.path.exists(path)}
    if action == "exists":
        return {p: os.path.exists(p) for p in event["paths"]}
    if action == "processes":
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        cmdlines = {}
        for pid in pids:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmdlines[pid] = f.read().replace(b"\\0", b" ").decode("utf-8", "replace")
            except OSError:
                pass
        return {"pids": pids, "me": os.getpid(), "cmdlines": cmdlines}
    if action == "identity":
        return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                "groups": os.getgroups(), "cwd": os.getcwd()}
    if action == "env":
        return dict(os.environ)
    if action == "rlimits":
        names = ["RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
                 "RLIMIT_MEMLOCK", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_STACK"]
        return {n: list(resource.getrlimit(getattr(resource, n))) for n in names}
    if action == "layer":
        import mylib
        tool = subprocess.run(["layertool"], capture_output=True, text=True)
        return {"value": mylib.VALUE, "file": mylib.__file__, "tool": tool.stdout,
                "opt": sorted(os.listdir("/opt")), "opt_write": try_write("/opt/new-file")}
    if action == "shadow":
        import shadowed
        return {"value": shadowed.VALUE}
    if action == "devices":
        with open("/dev/urandom", "rb") as f:
            random_bytes = len(f.read(16))
        with open("/dev/null", "w") as f:
            f.write("discarded")
        return {"urandom": random_bytes}
    raise ValueError(action)
'''


def probe_zip():
    return make_zip({"index.py": PROBE})


@pytest.fixture(scope="module")
def probe(lambda_client):
    name = unique_name("iso")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip(), Timeout=15)
    return name


@pytest.fixture(scope="module")
def other(lambda_client):
    name = unique_name("iso-other")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip())
    return name


# ---------------------------------------------------------------------------------------------
# Filesystem
# ---------------------------------------------------------------------------------------------

def test_var_task_and_the_system_are_read_only(lambda_client, probe):
    _, found = invoke_json(lambda_client, probe, {
        "action": "writes",
        "files": ["/var/task/new-file", "/var/task/index.py", "/var/runtime/new-file",
                  "/new-file", "/usr/new-file", "/etc/new-file"],
        "dirs": ["/var/task/new-dir"],
    })
    # Lambda's /var/task is a read-only file system (EROFS).
    assert found["/var/task/new-file"] == "EROFS"
    assert found["/var/task/index.py"] == "EROFS"
    assert found["/var/task/new-dir/"] == "EROFS"
    for path in ("/var/runtime/new-file", "/new-file", "/usr/new-file", "/etc/new-file"):
        assert found[path] != "ok", path


def test_tmp_is_writable(lambda_client, probe):
    _, found = invoke_json(lambda_client, probe, {
        "action": "writes", "files": ["/tmp/writable"], "dirs": ["/tmp/writable-dir"]})
    assert found == {"/tmp/writable": "ok", "/tmp/writable-dir/": "ok"}


def test_tmp_is_private_to_each_function(lambda_client, probe, other):
    file = f"secret-{uuid.uuid4().hex}"
    _, written = invoke_json(lambda_client, probe,
                             {"action": "tmp_write", "file": file, "content": "mine"})
    assert file in written["listing"]
    # Still there for the same (warm) function...
    assert invoke_json(lambda_client, probe, {"action": "tmp_read", "file": file})[1] == \
        {"exists": True}
    # ...but not for another function.
    assert invoke_json(lambda_client, other, {"action": "tmp_read", "file": file})[1] == \
        {"exists": False}


def test_tmp_is_private_to_each_execution_environment(lambda_client):
    name = unique_name("iso-envs")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip(), Timeout=15)
    files = [f"env-{i}-{uuid.uuid4().hex}" for i in range(2)]
    # Both held at once: two environments, each listing its /tmp after the other wrote.
    barrier = Barrier(2, timeout=20)

    def one(file):
        return invoke_json(lambda_client, name, {"action": "tmp_write", "file": file,
                                                 "content": file, "barrier": barrier.port})[1]

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        listings = list(pool.map(one, files))
    barrier.join()
    assert barrier.arrived == 2, "the two invokes were not running at once"
    for file, listing in zip(files, listings):
        mine = [f for f in listing["listing"] if f.startswith("env-")]
        assert mine == [file], listing


def test_host_files_are_out_of_sight(lambda_client, probe, server):
    # A file the host has in its own /tmp and in /root, and Flint's data dir.
    host_tmp = Path(tempfile.mkstemp(prefix="flint-host-secret-", dir="/tmp")[1])
    root_file = Path("/root") / f"flint-host-secret-{uuid.uuid4().hex}"
    try:
        try:
            root_file.write_text("host")
        except OSError:
            root_file = None
        paths = [str(host_tmp), str(server.data_dir), str(server.data_dir.parent),
                 str(server.log_path), "/work", "/root/.cargo"]
        if root_file is not None:
            paths.append(str(root_file))
        _, found = invoke_json(lambda_client, probe, {"action": "exists", "paths": paths})
        visible = [p for p, exists in found.items() if exists]
        assert visible == [], visible
    finally:
        host_tmp.unlink(missing_ok=True)
        if root_file is not None:
            root_file.unlink(missing_ok=True)


def test_devices_work(lambda_client, probe):
    assert invoke_json(lambda_client, probe, {"action": "devices"})[1] == {"urandom": 16}


# ---------------------------------------------------------------------------------------------
# Processes and identity
# ---------------------------------------------------------------------------------------------

def test_proc_shows_only_the_sandbox_processes(lambda_client, probe, server):
    _, found = invoke_json(lambda_client, probe, {"action": "processes"})
    assert len(found["pids"]) <= 8, found
    assert found["me"] in found["pids"]
    everything = " ".join(found["cmdlines"].values())
    # Neither Flint itself nor this test runner is visible.
    assert "flint serve" not in everything and "pytest" not in everything, found["cmdlines"]
    assert str(server.data_dir) not in everything


def test_functions_run_as_a_non_root_user(lambda_client, probe):
    _, ident = invoke_json(lambda_client, probe, {"action": "identity"})
    assert ident["uid"] != 0 and ident["euid"] != 0, ident
    assert ident["gid"] != 0
    # Lambda's sandbox user (sbx_user1051).
    assert (ident["uid"], ident["gid"]) == (993, 990)
    assert ident["cwd"] == "/var/task"


def test_rlimits_match_lambda(lambda_client, probe):
    # Recorded on AWS (test_runtime_ulimits).
    _, limits = invoke_json(lambda_client, probe, {"action": "rlimits"})
    assert limits == {
        "RLIMIT_AS": [-1, -1],
        "RLIMIT_CORE": [10737418240, 10737418240],
        "RLIMIT_CPU": [-1, -1],
        "RLIMIT_DATA": [-1, -1],
        # Unlimited where /tmp is limited as a whole (a btrfs volume, or an ext4 image per
        # environment; .ci/run installs btrfs-progs); hosts without either fall back to a
        # per-file limit.
        "RLIMIT_FSIZE": [-1, -1],
        "RLIMIT_MEMLOCK": [65536, 65536],
        "RLIMIT_NOFILE": [1024, 1024],
        "RLIMIT_NPROC": [742, 742],
        "RLIMIT_RSS": [-1, -1],
        "RLIMIT_STACK": [8388608, -1],
    }


# ---------------------------------------------------------------------------------------------
# Environment variables
# ---------------------------------------------------------------------------------------------

def test_environment_variables_match_the_recorded_set(lambda_client):
    # Recorded on AWS (test_lambda_init_environment) for a python3.x function.
    name = unique_name("iso-env")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip(),
                    MemorySize=256)
    _, env = invoke_json(lambda_client, name, {"action": "env"})
    fixed = {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "_HANDLER": "index.handler",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "LANG": "en_US.UTF-8",
        "LC_CTYPE": "C.UTF-8",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
                           "/var/task:/var/task/lib:/opt/lib",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    assert {k: env.get(k) for k in fixed} == fixed
    # Present with per-environment values: the role's credentials, the Runtime API, the trace.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_LOG_STREAM_NAME", "_X_AMZN_TRACE_ID"):
        assert env.get(key), key


def test_own_variables_cannot_override_lambdas(lambda_client):
    # Reserved keys are refused at CreateFunction on AWS; the unreserved ones Lambda also sets
    # (LANG, PATH, TZ, ...) take the function's value.
    name = unique_name("iso-own")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip(),
                    Environment={"Variables": {"MY_SETTING": "on", "LANG": "C"}})
    _, env = invoke_json(lambda_client, name, {"action": "env"})
    assert env["MY_SETTING"] == "on"
    assert env["LANG"] == "C"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name


# ---------------------------------------------------------------------------------------------
# Layers at /opt
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def layered(lambda_client):
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("iso-layer"),
        Content={"ZipFile": make_zip({
            "python/mylib.py": "VALUE = 'from-layer'\n",
            "python/shadowed.py": "VALUE = 'first layer'\n",
            "bin/layertool": ("#!/bin/sh\necho layer-tool-ran\n", 0o755),
        })},
        CompatibleRuntimes=["python3.12"])
    second = lambda_client.publish_layer_version(
        LayerName=unique_name("iso-layer2"),
        Content={"ZipFile": make_zip({"python/shadowed.py": "VALUE = 'second layer'\n"})},
        CompatibleRuntimes=["python3.12"])
    name = unique_name("iso-layered")
    create_function(lambda_client, name, runtime="python3.12", zip_bytes=probe_zip(),
                    Layers=[layer["LayerVersionArn"], second["LayerVersionArn"]])
    return name


def test_layer_python_dir_is_importable_and_bin_is_on_path(lambda_client, layered):
    resp, found = invoke_json(lambda_client, layered, {"action": "layer"})
    assert "FunctionError" not in resp, found
    assert found["value"] == "from-layer"
    assert found["file"] == "/opt/python/mylib.py"
    assert found["tool"] == "layer-tool-ran\n"
    assert found["opt"] == ["bin", "python"]
    assert found["opt_write"] == "EROFS"


def test_later_layers_override_earlier_ones(lambda_client, layered):
    _, found = invoke_json(lambda_client, layered, {"action": "shadow"})
    assert found == {"value": "second layer"}


def test_function_code_shadows_its_layers(lambda_client):
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("iso-layer3"),
        Content={"ZipFile": make_zip({"python/shadowed.py": "VALUE = 'layer'\n"})})
    name = unique_name("iso-shadow")
    create_function(lambda_client, name, runtime="python3.12",
                    zip_bytes=make_zip({"index.py": PROBE,
                                        "shadowed.py": "VALUE = 'function code'\n"}),
                    Layers=[layer["LayerVersionArn"]])
    # /var/task comes before /opt/python on the Python path.
    assert invoke_json(lambda_client, name, {"action": "shadow"})[1] == \
        {"value": "function code"}


def test_no_layers_means_an_empty_opt(lambda_client, probe):
    _, found = invoke_json(lambda_client, probe, {"action": "exists",
                                                  "paths": ["/opt", "/opt/python", "/opt/bin"]})
    assert found == {"/opt": True, "/opt/python": False, "/opt/bin": False}


# ---------------------------------------------------------------------------------------------
# Events: every environment's Runtime API is on the host's loopback, but only its own processes
# may use it.
# ---------------------------------------------------------------------------------------------

SNOOP = '''
import os, socket


def handler(event, context):
    if event.get("action") == "whoami":
        return {"runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"]}
    host, port = event["target"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=3)
    s.settimeout(3)
    try:
        s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        data = s.recv(65536)
    except (socket.timeout, ConnectionError) as e:
        return {"got": None, "error": type(e).__name__}
    finally:
        s.close()
    return {"got": data.decode(errors="replace")}
'''


def test_a_function_cannot_take_another_functions_events(lambda_client):
    victim = unique_name("iso-victim")
    thief = unique_name("iso-thief")
    for name in (victim, thief):
        create_function(lambda_client, name, zip_bytes=make_zip({"index.py": SNOOP}), Timeout=10)
    _, who = invoke_json(lambda_client, victim, {"action": "whoami"})
    target = who["runtime_api"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        stolen = pool.submit(invoke_json, lambda_client, thief, {"target": target})
        # While the thief is connected (or refused), the victim's own invokes still reach it.
        _, again = invoke_json(lambda_client, victim, {"action": "whoami"})
        _, result = stolen.result()
    assert again == {"runtime_api": target}
    got = result.get("got")
    assert not got or "Lambda-Runtime-Aws-Request-Id" not in got and "whoami" not in got, result
    # The victim's environment is unharmed.
    _, third = invoke_json(lambda_client, victim, {"action": "whoami"})
    assert third == {"runtime_api": target}
