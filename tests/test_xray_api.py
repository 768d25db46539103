"""The X-Ray API on Flint's endpoint, read with boto3's xray client: an Active-traced Python
function using `aws_xray_sdk` (from a layer) is found by GetTraceSummaries (time range, no filter
and `service("name")`), and BatchGetTraces returns Flint's AWS::Lambda::Function segment with
the SDK's subsegment inside it, as X-Ray returns an assembled trace. Other X-Ray operations get
X-Ray's error shape."""

import json
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (REGION, client_error, create_function, invoke_json, make_zip,
                      random_account, unique_name)
from test_tracing import XRAY_APP


def xray_client(server, account="AKIDFLINTTEST"):
    return boto3.session.Session().client(
        "xray", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=account, aws_secret_access_key="flint-test-secret",
        config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture(scope="module")
def xray(server):
    return xray_client(server)


@pytest.fixture(scope="module")
def traced(lambda_client, tmp_path_factory):
    """An Active-traced function whose code opens an `aws_xray_sdk` subsegment, invoked once."""
    target = tmp_path_factory.mktemp("xraysdk") / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--only-binary=:all:", "--target", str(target),
                    "aws-xray-sdk==2.15.0", "wrapt==2.5.2"], check=True, timeout=600)
    files = {f"python/{p.relative_to(target)}": p.read_bytes()
             for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("xraysdk"), Content={"ZipFile": make_zip(files)})["LayerVersionArn"]
    name = unique_name("xrayapi")
    create_function(lambda_client, name, Layers=[layer], zip_bytes=make_zip({"index.py": XRAY_APP}),
                    TracingConfig={"Mode": "Active"})
    started = time.time()
    assert invoke_json(lambda_client, name, {})[1] == "done"
    return name, started


def summaries(xray, start, **kwargs):
    pages = xray.get_paginator("get_trace_summaries").paginate(
        StartTime=start - 60, EndTime=time.time() + 60, **kwargs)
    return [s for p in pages for s in p["TraceSummaries"]]


def wait_for_trace(xray, name, start, timeout=20.0):
    """The function's trace, once its segment and the SDK's subsegment are both kept."""
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in summaries(xray, start)
                 if any(i["Name"] == name for i in s["ServiceIds"])]
        if found:
            traces = xray.batch_get_traces(TraceIds=[found[0]["Id"]])["Traces"]
            docs = [json.loads(seg["Document"]) for t in traces for seg in t["Segments"]]
            if any(sub.get("name") == "flint-work" for d in docs for sub in d.get("subsegments", [])):
                return found[0], traces[0], docs
        if time.monotonic() > deadline:
            raise AssertionError(f"no complete trace of {name} in {timeout}s")
        time.sleep(0.2)


def test_a_traced_functions_trace_is_summarised_and_fetched(xray, traced):
    name, start = traced
    summary, trace, docs = wait_for_trace(xray, name, start)
    assert summary["EntryPoint"]["Name"] == name
    assert summary["EntryPoint"]["Type"] == "AWS::Lambda::Function"
    assert summary["HasError"] is False and summary["HasFault"] is False
    assert summary["Duration"] >= 0
    assert summary["Annotations"]["kind"] == [{"AnnotationValue": {"StringValue": "test"}}]
    assert any(a["ARN"].endswith(f":function:{name}") for a in summary["ResourceARNs"])

    # service("name") finds it; another name does not.
    by_service = summaries(xray, start, FilterExpression=f'service("{name}")')
    assert [s["Id"] for s in by_service] == [summary["Id"]]
    assert summaries(xray, start, FilterExpression='service("no-such-service")') == []

    assert trace["Id"] == summary["Id"]
    [function] = [d for d in docs if d.get("origin") == "AWS::Lambda::Function"]
    assert function["name"] == name and function["trace_id"] == summary["Id"]
    [segment] = [s for s in trace["Segments"] if s["Id"] == function["id"]]
    assert json.loads(segment["Document"]) == function
    [work] = [s for s in function["subsegments"] if s["name"] == "flint-work"]
    assert work["annotations"] == {"kind": "test"}
    assert function["start_time"] <= work["start_time"] <= work["end_time"] <= function["end_time"] + 1


def test_a_time_range_before_the_trace_finds_nothing(xray, traced):
    name, start = traced
    wait_for_trace(xray, name, start)
    old = xray.get_trace_summaries(StartTime=start - 7200, EndTime=start - 3600)
    assert [s for s in old["TraceSummaries"]
            if any(i["Name"] == name for i in s["ServiceIds"])] == []


def test_unknown_ids_are_unprocessed_and_other_operations_refused(xray):
    missing = "1-00000000-000000000000000000000000"
    out = xray.batch_get_traces(TraceIds=[missing])
    assert out["Traces"] == [] and out["UnprocessedTraceIds"] == [missing]

    with pytest.raises(ClientError) as e:
        xray.get_service_graph(StartTime=time.time() - 60, EndTime=time.time())
    err = client_error(e)
    assert (err["status"], err["code"]) == (400, "InvalidRequestException"), err
    assert "GetServiceGraph" in err["message"]

    with pytest.raises(ClientError) as e:
        xray.get_trace_summaries(StartTime=time.time(), EndTime=time.time() - 60)
    assert client_error(e)["code"] == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        xray.get_trace_summaries(StartTime=time.time() - 60, EndTime=time.time(),
                                 FilterExpression="service(")
    assert client_error(e)["code"] == "InvalidRequestException"


def test_another_accounts_traces_are_not_seen(server, traced):
    name, start = traced
    other = xray_client(server, account=random_account())
    assert [s for s in summaries(other, start)
            if any(i["Name"] == name for i in s["ServiceIds"])] == []
