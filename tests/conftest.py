"""Shared fixtures for the conformance suite: a real `flint serve` started once per session on a
free port and a temporary data dir, boto3 clients pointed at it as users point theirs, and helpers
that build function zips in memory and create functions (shared between tests where possible).

The suite asserts AWS Lambda's behaviour (status codes, error codes, exact messages, shapes), as
recorded against real AWS; a failure means Flint differs from AWS, not that the test is too strict.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"
ROLE = "arn:aws:iam::000000000000:role/lambda-role"

# Where the suite's servers find the AWS SDKs for the managed runtimes (`flint runtimes install`).
RUNTIMES_DIR = REPO / "target" / "runtimes-test"

# A file in a zip: its content, or (content, unix mode).
ZipEntry = Union[str, bytes, Tuple[Union[str, bytes], int]]


# --------------------------------------------------------------------------------------------
# The flint binary and server
# --------------------------------------------------------------------------------------------

_BUILD_LOCK = threading.Lock()


def flint_binary() -> Path:
    """`FLINT_BIN` if set, else `target/debug/flint` (built with cargo when missing)."""
    override = os.environ.get("FLINT_BIN")
    if override:
        path = Path(override)
        if not path.is_file():
            pytest.exit(f"FLINT_BIN={override} does not exist", returncode=2)
        return path
    path = REPO / "target" / "debug" / "flint"
    with _BUILD_LOCK:
        if not path.is_file():
            subprocess.run(["cargo", "build", "-p", "flint"], cwd=REPO, check=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_account() -> str:
    """A fresh 12-digit account id: its functions are invisible to every other test."""
    return "".join(random.choice("0123456789") for _ in range(12))


class FlintServer:
    """One `flint serve` process on 127.0.0.1:<port> with its own data dir."""

    # The suite's functions call back to servers on the host's loopback (callback_server, TCP
    # barriers): they run on the host's network, not in Flint's default (`isolated`) one.
    # tests/test_network_isolation.py starts servers with `--function-network isolated`.
    # A server started without `--function-network` in its arguments gets this
    # (FLINT_TEST_FUNCTION_NETWORK=isolated runs those servers in Flint's default instead, to see
    # which tests need the host's loopback).
    HOST_NETWORK = ("--function-network", os.environ.get("FLINT_TEST_FUNCTION_NETWORK", "host"))

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, port: Optional[int] = None,
                 extra_args: Sequence[str] = (),
                 extra_env: Optional[Dict[str, str]] = None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        if "--function-network" not in self.extra_args:
            self.extra_args = [*self.HOST_NETWORK, *self.extra_args]
        self.extra_env = dict(extra_env or {})
        self.proc: Optional[subprocess.Popen] = None
        self._log_file = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "FlintServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        # The AWS SDKs of the managed runtimes: one directory for the whole suite, filled once by
        # `flint runtimes install` (tests/test_runtime_sdks.py), never by each server at start.
        env.setdefault("FLINT_RUNTIMES_DIR", str(RUNTIMES_DIR))
        env.setdefault("FLINT_INSTALL_RUNTIMES", "off")
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            # Its own process group: everything it starts can be cleaned up by that group's id.
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Ready = a signed ListFunctions answers (not just an open port)."""
        client = self.client(connect_timeout=2, read_timeout=5)
        deadline = time.monotonic() + timeout
        last_error: Optional[BaseException] = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"flint serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                client.list_functions(MaxItems=1)
                return
            except (botocore.exceptions.EndpointConnectionError,
                    botocore.exceptions.ConnectionClosedError,
                    botocore.exceptions.ReadTimeoutError,
                    botocore.exceptions.ClientError) as e:
                last_error = e
                time.sleep(0.05)
        raise RuntimeError(
            f"flint serve not ready after {timeout}s ({last_error!r}):\n{self.log_tail()}")

    def log_tail(self, max_bytes: int = 6000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-max_bytes:].decode("utf-8", "replace")

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def kill(self) -> None:
        """SIGKILL the server process only (as a crash would), leaving its data dir as it is."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; then end whatever is left in its process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def client(self, account: Optional[str] = None, region: str = REGION, *,
               validate: bool = True, read_timeout: float = 70, connect_timeout: float = 5,
               access_key: Optional[str] = None):
        """A boto3 Lambda client as a user would configure it. `account` (12 digits) becomes the
        access key id, which names the account; otherwise a non-numeric key (account
        000000000000). `validate=False` turns off botocore's client-side checks so that the
        server's own validation is what answers."""
        key = access_key or account or "AKIDFLINTTEST"
        return boto3.session.Session().client(
            "lambda",
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key="flint-test-secret",
            config=Config(
                retries={"total_max_attempts": 1},
                read_timeout=read_timeout,
                connect_timeout=connect_timeout,
                parameter_validation=validate,
                max_pool_connections=32,
            ),
        )


@pytest.fixture(scope="session")
def flint_bin() -> Path:
    return flint_binary()


@pytest.fixture(scope="session")
def session_tmp() -> Iterable[Path]:
    path = Path(tempfile.mkdtemp(prefix="flint-tests-"))
    yield path
    if os.environ.get("FLINT_KEEP_TMP") != "1":
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Other AWS services: moto's server on loopback
# --------------------------------------------------------------------------------------------

# The async retry delay of the session's server: AWS waits about a minute before the first retry
# of a failed asynchronous invocation and two before the second; the suite waits 1 s and 2 s.
ASYNC_RETRY_DELAY_SECS = 1


class AwsServices:
    """`moto_server` on a free loopback port: SQS, SNS, EventBridge and S3 as Flint reaches them
    (its resources live in the suite's default account), and boto3 clients for the tests."""

    def __init__(self, binary: str, log_path: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        env = dict(os.environ, MOTO_ACCOUNT_ID=DEFAULT_ACCOUNT)
        self.proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not listen within 30 s")
                time.sleep(0.05)

    def client(self, service: str):
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=DEFAULT_ACCOUNT, aws_secret_access_key="flint-test-secret")

    def flint_env(self) -> Dict[str, str]:
        """What Flint needs to reach these services as the default account."""
        return {"AWS_ACCESS_KEY_ID": DEFAULT_ACCOUNT,
                "AWS_SECRET_ACCESS_KEY": "flint-test-secret",
                "AWS_REGION": REGION}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def moto_server_binary() -> Optional[str]:
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("moto_server")


@pytest.fixture(scope="session")
def _aws_services_or_none(session_tmp: Path) -> Iterable[Optional[AwsServices]]:
    binary = moto_server_binary()
    if binary is None:
        yield None
        return
    services = AwsServices(binary, session_tmp / "moto-server.log")
    yield services
    services.stop()


@pytest.fixture(scope="session")
def aws_services(_aws_services_or_none) -> AwsServices:
    """moto's server (the tests that need it skip, saying why, when it is not installed)."""
    if _aws_services_or_none is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]': tests/requirements.txt)")
    return _aws_services_or_none


@pytest.fixture(scope="session")
def server(flint_bin: Path, session_tmp: Path,
           _aws_services_or_none: Optional[AwsServices]) -> Iterable[FlintServer]:
    args = ["--async-retry-delay-secs", str(ASYNC_RETRY_DELAY_SECS)]
    env: Dict[str, str] = {}
    if _aws_services_or_none is not None:
        args += ["--aws-endpoint-url", _aws_services_or_none.endpoint]
        env.update(_aws_services_or_none.flint_env())
    srv = FlintServer(flint_bin, session_tmp / "data", session_tmp / "flint-serve.log",
                      extra_args=args, extra_env=env)
    try:
        srv.start()
    except Exception as e:  # the whole suite depends on it: say why once, clearly
        srv.stop()
        pytest.exit(f"could not start flint serve: {e}", returncode=3)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def lambda_client(server: FlintServer):
    """Default account (000000000000), us-east-1."""
    return server.client()


@pytest.fixture(scope="session")
def raw_client(server: FlintServer):
    """Default account, no client-side parameter validation (the server must validate)."""
    return server.client(validate=False)


@pytest.fixture(scope="session")
def make_client(server: FlintServer) -> Callable:
    return server.client


# Attach what the server logged during a failing test to its report: it tells a server bug
# (a panic, an error) from a test bug at a glance.
@pytest.fixture(autouse=True)
def _server_log_mark(request):
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        request.node._flint_server = srv
        request.node._flint_log_start = srv.log_size()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    srv = getattr(item, "_flint_server", None)
    if srv is None:
        return
    start = getattr(item, "_flint_log_start", 0)
    try:
        with open(srv.log_path, "rb") as f:
            f.seek(start)
            text = f.read()[-8000:].decode("utf-8", "replace")
    except OSError:
        return
    if text.strip():
        report.sections.append(("flint serve log during this test", text))


# --------------------------------------------------------------------------------------------
# Zips and functions
# --------------------------------------------------------------------------------------------

def make_zip(files: Dict[str, ZipEntry]) -> bytes:
    """A deflated zip from {path: content or (content, mode)}; mode 0o644 unless given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, entry in files.items():
            if isinstance(entry, tuple):
                content, mode = entry
            else:
                content, mode = entry, 0o644
            if isinstance(content, str):
                content = content.encode()
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 1, 12, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix: external_attr carries the mode
            info.external_attr = ((0o100000 | mode) & 0xFFFF) << 16
            z.writestr(info, content)
    return buf.getvalue()


def zip_dir(root: Path, extra: Optional[Dict[str, ZipEntry]] = None) -> bytes:
    """A zip of every file under `root` (modes kept), plus `extra` entries."""
    files: Dict[str, ZipEntry] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[str(path.relative_to(root))] = (path.read_bytes(), path.stat().st_mode & 0o777)
    files.update(extra or {})
    return make_zip(files)


def fixture_text(relative: str) -> str:
    return (FIXTURES / relative).read_text()


def code_sha256(zip_bytes: bytes) -> str:
    """What Lambda reports as CodeSha256: base64 of the zip's SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def python_zip() -> bytes:
    return make_zip({"index.py": fixture_text("python/index.py")})


def node_zip(kind: str) -> Tuple[bytes, str]:
    """(zip, handler) for a Node.js fixture: 'callback' (CommonJS, sync callback), 'async'
    (CommonJS, async handler) or 'esm' (ES module .mjs, async handler)."""
    if kind == "callback":
        return make_zip({"index.js": fixture_text("node/callback.js")}), "index.handler"
    if kind == "async":
        return make_zip({"app.js": fixture_text("node/async.js")}), "app.handler"
    if kind == "esm":
        return make_zip({"index.mjs": fixture_text("node/index.mjs")}), "index.handler"
    raise ValueError(kind)


def provided_zip(kind: str = "python") -> bytes:
    """A custom-runtime zip whose `bootstrap` speaks the Runtime API itself: 'python' (urllib)
    or 'shell' (sh + curl, the shape of AWS's custom-runtime tutorial)."""
    if kind == "python":
        return make_zip({"bootstrap": (fixture_text("provided/bootstrap.py"), 0o755)})
    if kind == "shell":
        return make_zip({
            "bootstrap": (fixture_text("provided/bootstrap.sh"), 0o755),
            "function.sh": (fixture_text("provided/function.sh"), 0o755),
        })
    raise ValueError(kind)


def wait_active(client, name: str, timeout: float = 30) -> dict:
    """Polls GetFunctionConfiguration until State is Active (or Failed: then fails loudly)."""
    deadline = time.monotonic() + timeout
    while True:
        conf = client.get_function_configuration(FunctionName=name)
        if conf.get("State") == "Active" and conf.get("LastUpdateStatus", "Successful") != "InProgress":
            return conf
        if conf.get("State") == "Failed" or conf.get("LastUpdateStatus") == "Failed":
            raise AssertionError(f"function {name} failed: {json.dumps(conf, default=str)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"function {name} not Active after {timeout}s: {conf}")
        time.sleep(0.05)


def create_function(client, name: Optional[str] = None, *, runtime: str = "python3.11",
                    handler: str = "index.handler", zip_bytes: Optional[bytes] = None,
                    wait: bool = True, **extra) -> dict:
    """CreateFunction with sensible defaults; waits until Active unless `wait=False`.
    Returns the CreateFunction response."""
    name = name or unique_name("fn")
    if zip_bytes is None:
        zip_bytes = python_zip()
    resp = client.create_function(
        FunctionName=name, Runtime=runtime, Handler=handler, Role=ROLE,
        Code={"ZipFile": zip_bytes}, **extra)
    if wait:
        wait_active(client, name)
    return resp


_NO_EVENT = object()


def invoke_json(client, name: str, event=_NO_EVENT, **kwargs) -> Tuple[dict, object]:
    """Invoke and decode the payload as JSON: (response without the stream, payload). Without
    `event`, no payload is sent at all; `event=None` sends JSON `null`."""
    if event is not _NO_EVENT:
        kwargs["Payload"] = json.dumps(event).encode()
    resp = client.invoke(FunctionName=name, **kwargs)
    raw = resp["Payload"].read()
    resp = {k: v for k, v in resp.items() if k != "Payload"}
    resp["RawPayload"] = raw
    payload = json.loads(raw) if raw else None
    return resp, payload


def request_id(resp: dict) -> str:
    return resp["ResponseMetadata"]["RequestId"]


def client_error(excinfo) -> dict:
    """The parts of a botocore ClientError the suite asserts on."""
    r = excinfo.value.response
    return {
        "status": r["ResponseMetadata"]["HTTPStatusCode"],
        "code": r["Error"].get("Code"),
        "message": r["Error"].get("Message"),
        "type": r.get("Type"),
        "response": r,
    }


def not_found_message(name: str, account: str = DEFAULT_ACCOUNT, region: str = REGION,
                      qualifier: Optional[str] = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    if qualifier:
        arn += f":{qualifier}"
    return f"Function not found: {arn}"


# --------------------------------------------------------------------------------------------
# Functions shared by many tests (created once per session)
# --------------------------------------------------------------------------------------------

@dataclass
class SharedFunctions:
    client: object
    _made: Dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str, factory: Callable[[str], None]) -> str:
        with self._lock:
            if key not in self._made:
                name = unique_name(key)
                factory(name)
                self._made[key] = name
            return self._made[key]


@pytest.fixture(scope="session")
def shared(lambda_client) -> SharedFunctions:
    return SharedFunctions(lambda_client)


@pytest.fixture(scope="session")
def python_fn(shared: SharedFunctions, lambda_client) -> str:
    """The python3.11 probe function (tests/fixtures/python/index.py), default configuration
    plus one variable of its own. Tests must not change its configuration."""
    return shared.get("py", lambda name: create_function(
        lambda_client, name, runtime="python3.11",
        Environment={"Variables": {"FLINT_TEST_VAR": "from-config"}}))


class CallbackServer:
    """A tiny HTTP server on loopback that functions POST to (functions share the host's
    network by default), so tests can observe work done in the background."""

    def __init__(self):
        import http.server

        received = self.received = []
        cond = self.cond = threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with cond:
                    received.append(body.decode("utf-8", "replace"))
                    cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 15) -> Optional[str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.received:
                    if predicate(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def callback_server() -> Iterable[CallbackServer]:
    srv = CallbackServer()
    yield srv
    srv.close()


def aws_cli() -> Optional[str]:
    """The `aws` CLI of this Python environment (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).parent / "aws"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("aws")
