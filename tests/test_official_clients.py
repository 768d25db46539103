"""AWS's own runtime interface clients, unmodified, as custom runtimes: Python's `awslambdaric`
(vendored into the zip with `pip install --target`) and a Rust `bootstrap` built with the
`lambda_runtime` crate (tests/fixtures/rust-bootstrap). If Flint's Runtime API differs from AWS's
in a way these clients notice, they fail here."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    FIXTURES,
    REGION,
    REPO,
    create_function,
    invoke_json,
    request_id,
    unique_name,
    zip_dir,
)

FIXTURE_TARGET = REPO / "target" / "fixtures"


def arn(name):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


@pytest.fixture(scope="session")
def awslambdaric_dir() -> Path:
    """awslambdaric (the version this environment pins) installed with `pip install --target`
    into a cached directory; falls back to copying the installed package if PyPI is away."""
    version = importlib.metadata.version("awslambdaric")
    target = FIXTURE_TARGET / f"awslambdaric-{version}"
    if (target / "awslambdaric" / "__init__.py").is_file():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
         "--target", str(staging), f"awslambdaric=={version}"],
        capture_output=True, text=True)
    if result.returncode != 0:
        # Offline: the same distribution is installed here, copy it and its dependencies.
        staging.mkdir(parents=True, exist_ok=True)
        for dist_name in ("awslambdaric", "simplejson", "snapshot-restore-py"):
            try:
                dist = importlib.metadata.distribution(dist_name)
            except importlib.metadata.PackageNotFoundError:
                continue
            for file in dist.files or []:
                src = Path(dist.locate_file(file))
                if src.is_file() and "__pycache__" not in src.parts:
                    dst = staging / file
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


@pytest.fixture(scope="session")
def rust_bootstrap() -> Path:
    """The lambda_runtime bootstrap: `FLINT_RUST_BOOTSTRAP`, else target/fixtures/release/
    bootstrap, built (release, own target dir) when missing."""
    override = os.environ.get("FLINT_RUST_BOOTSTRAP")
    if override:
        return Path(override)
    binary = FIXTURE_TARGET / "release" / "bootstrap"
    if not binary.is_file():
        env = dict(os.environ, CARGO_TARGET_DIR=str(FIXTURE_TARGET))
        subprocess.run(
            ["cargo", "build", "--release", "--manifest-path",
             str(FIXTURES / "rust-bootstrap" / "Cargo.toml")],
            cwd=REPO, env=env, check=True)
    return binary


@pytest.fixture(scope="module")
def awslambdaric_fn(lambda_client, awslambdaric_dir):
    name = unique_name("awslambdaric")
    zip_bytes = zip_dir(awslambdaric_dir, extra={
        "bootstrap": ((FIXTURES / "awslambdaric" / "bootstrap").read_bytes(), 0o755),
        "index.py": (FIXTURES / "awslambdaric" / "index.py").read_bytes(),
    })
    create_function(lambda_client, name, runtime="provided.al2023", handler="index.handler",
                    zip_bytes=zip_bytes, Timeout=10)
    return name


@pytest.fixture(scope="module")
def rust_fn(lambda_client, rust_bootstrap):
    from conftest import make_zip

    name = unique_name("rust")
    create_function(lambda_client, name, runtime="provided.al2023", handler="bootstrap",
                    zip_bytes=make_zip({"bootstrap": (rust_bootstrap.read_bytes(), 0o755)}),
                    MemorySize=256)
    return name


def test_awslambdaric_serves_invokes(lambda_client, awslambdaric_fn):
    resp, payload = invoke_json(lambda_client, awslambdaric_fn, {"hello": "ric"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload["event"] == {"hello": "ric"}
    assert payload["runtime_client"] == "awslambdaric"
    assert payload["function_name"] == awslambdaric_fn
    assert payload["memory_limit_in_mb"] == "128"
    assert payload["aws_request_id"] == request_id(resp)
    assert payload["invoked_function_arn"] == arn(awslambdaric_fn)
    assert 0 < payload["remaining_ms"] <= 10000
    assert payload["handler_env"] == "index.handler"

    _, again = invoke_json(lambda_client, awslambdaric_fn, {"n": 2})
    assert again["count"] == payload["count"] + 1, "warm reuse of the awslambdaric process"


def test_awslambdaric_reports_handler_errors(lambda_client, awslambdaric_fn):
    resp, payload = invoke_json(lambda_client, awslambdaric_fn,
                                {"action": "error", "message": "ric failed"})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorMessage"] == "ric failed"
    assert payload["errorType"] == "RuntimeError"
    assert isinstance(payload["stackTrace"], list)
    resp, payload = invoke_json(lambda_client, awslambdaric_fn, {"after": "error"})
    assert "FunctionError" not in resp and payload["event"] == {"after": "error"}


def test_rust_lambda_runtime_serves_invokes(lambda_client, rust_fn):
    resp, payload = invoke_json(lambda_client, rust_fn, {"hello": "rust"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload["event"] == {"hello": "rust"}
    assert payload["request_id"] == request_id(resp)
    assert payload["invoked_function_arn"] == arn(rust_fn)
    assert payload["function_name"] == rust_fn
    assert payload["memory_size"] == 256
    assert payload["version"] == "$LATEST"
    assert payload["log_group"] == f"/aws/lambda/{rust_fn}"
    assert payload["deadline_ms"] > 0

    counts = [invoke_json(lambda_client, rust_fn, {"i": i})[1]["count"] for i in range(3)]
    assert counts == [payload["count"] + 1, payload["count"] + 2, payload["count"] + 3]


def test_rust_lambda_runtime_reports_handler_errors(lambda_client, rust_fn):
    resp, payload = invoke_json(lambda_client, rust_fn, {"fail": "rust failed"})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorMessage"] == "rust failed"
    assert payload["errorType"]
    resp, payload = invoke_json(lambda_client, rust_fn, {"after": "error"})
    assert "FunctionError" not in resp and payload["event"] == {"after": "error"}


def test_rust_bootstrap_handles_concurrent_invokes(lambda_client, rust_fn):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(
            lambda i: invoke_json(lambda_client, rust_fn, {"i": i}), range(8)))
    assert sorted(p["event"]["i"] for _, p in results) == list(range(8))
    assert all("FunctionError" not in r for r, _ in results)
