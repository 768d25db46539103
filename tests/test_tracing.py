"""X-Ray tracing as Lambda does it: the caller's trace header reaches the function with a sampling
decision (Active tracing samples, an upstream decision is honoured), the X-Ray daemon address is
set, and the segments of a sampled invocation — Flint's own AWS::Lambda::Function segment and the
subsegments the function's X-Ray SDK sends — are kept per function."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import create_function, invoke_json, make_zip, unique_name

ENV_APP = """
import os
def handler(event, context):
    return {k: os.environ.get(k) for k in ("_X_AMZN_TRACE_ID", "AWS_XRAY_DAEMON_ADDRESS",
                                           "AWS_XRAY_CONTEXT_MISSING")}
"""

ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793"


def invoke_with_trace(client, name, header=None):
    def add(request, **_):
        request.headers["X-Amzn-Trace-Id"] = header
    if header:
        client.meta.events.register("before-sign.lambda.Invoke", add)
    try:
        return invoke_json(client, name, {})[1]
    finally:
        if header:
            client.meta.events.unregister("before-sign.lambda.Invoke", add)


def fields(header):
    return dict(p.split("=", 1) for p in header.split(";"))


def test_active_tracing_samples_and_an_upstream_decision_is_honoured(lambda_client):
    active = unique_name("traced")
    create_function(lambda_client, active, zip_bytes=make_zip({"index.py": ENV_APP}),
                    TracingConfig={"Mode": "Active"})
    out = invoke_with_trace(lambda_client, active)
    f = fields(out["_X_AMZN_TRACE_ID"])
    assert f["Sampled"] == "1" and len(f["Parent"]) == 16, out
    assert out["AWS_XRAY_DAEMON_ADDRESS"].startswith("127.0.0.1:"), out
    assert out["AWS_XRAY_CONTEXT_MISSING"] == "LOG_ERROR"
    # The caller's trace goes on; its decision not to sample stands.
    f = fields(invoke_with_trace(lambda_client, active, f"{ROOT};Sampled=0")["_X_AMZN_TRACE_ID"])
    assert f["Root"] == ROOT.split("=")[1] and f["Sampled"] == "0"

    passthrough = unique_name("passthrough")
    create_function(lambda_client, passthrough, zip_bytes=make_zip({"index.py": ENV_APP}))
    assert fields(invoke_with_trace(lambda_client, passthrough)["_X_AMZN_TRACE_ID"])["Sampled"] == "0"
    f = fields(invoke_with_trace(lambda_client, passthrough,
                                 f"{ROOT};Parent=53995c3f42cd8ad8;Sampled=1")["_X_AMZN_TRACE_ID"])
    assert f["Sampled"] == "1" and f["Parent"] == "53995c3f42cd8ad8"


XRAY_APP = """
from aws_xray_sdk.core import xray_recorder
def handler(event, context):
    with xray_recorder.in_subsegment("flint-work") as sub:
        sub.put_annotation("kind", "test")
    return "done"
"""


def test_segments_of_sampled_invocations_are_kept_per_function(lambda_client, server, tmp_path):
    target = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--only-binary=:all:", "--target", str(target),
                    "aws-xray-sdk==2.15.0", "wrapt==2.5.2"], check=True, timeout=600)
    files = {f"python/{p.relative_to(target)}": p.read_bytes()
             for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("xraysdk"), Content={"ZipFile": make_zip(files)})["LayerVersionArn"]
    name = unique_name("xray")
    create_function(lambda_client, name, Layers=[layer], zip_bytes=make_zip({"index.py": XRAY_APP}),
                    TracingConfig={"Mode": "Active"})
    assert invoke_json(lambda_client, name, {})[1] == "done"
    deadline = time.monotonic() + 15
    segments = []
    while time.monotonic() < deadline:
        files = list(server.data_dir.rglob(f"traces/*/*/{name}/segments.jsonl"))
        segments = [json.loads(line) for p in files for line in p.read_text().splitlines()]
        if any(s.get("name") == "flint-work" for s in segments) and any(
                s.get("origin") == "AWS::Lambda::Function" for s in segments):
            break
        time.sleep(0.1)
    function = next(s for s in segments if s.get("origin") == "AWS::Lambda::Function")
    work = next(s for s in segments if s.get("name") == "flint-work")
    assert function["name"] == name and function["end_time"] >= function["start_time"]
    # The SDK's subsegment hangs under the function's segment, in the same trace.
    assert work["parent_id"] == function["id"] and work["trace_id"] == function["trace_id"]
    assert work["annotations"] == {"kind": "test"}
