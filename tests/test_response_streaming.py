"""Response streaming end to end: a runtime streams through the Runtime API (chunked, errors as
trailers); InvokeWithResponseStream hands each chunk to boto3 as a PayloadChunk event as it
arrives (the first before the function has written the last), then InvokeComplete; a plain
Invoke gets the whole stream; a RESPONSE_STREAM function URL streams to an HTTP client with the
status and headers of AWS's prelude."""

import json
import time

from conftest import create_function, fixture_text, make_zip, unique_name
from test_function_urls import fetch, grant_public

STREAMING = make_zip({"bootstrap": (fixture_text("provided/streaming_bootstrap.py"), 0o755)})


def streaming_function(client, **extra):
    name = unique_name("stream")
    create_function(client, name, runtime="provided.al2023", handler="stream",
                    zip_bytes=STREAMING, **extra)
    return name


def test_invoke_with_response_stream_sends_chunks_as_they_arrive(lambda_client):
    name = streaming_function(lambda_client)
    resp = lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": 3, "delay": 0.6}), LogType="Tail")
    assert resp["StatusCode"] == 200
    arrivals, payload, complete = [], b"", None
    for event in resp["EventStream"]:
        if "PayloadChunk" in event:
            arrivals.append(time.monotonic())
            payload += event["PayloadChunk"]["Payload"]
        if "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    assert payload == b"chunk0\nchunk1\nchunk2\n"
    assert len(arrivals) == 3
    # The first chunk came while the function was still writing: 2 × 0.6 s before the last.
    assert arrivals[-1] - arrivals[0] > 1.0, arrivals
    assert complete is not None and "ErrorCode" not in complete
    assert "LogResult" in complete


def test_error_trailers_end_the_stream_with_the_error(lambda_client):
    name = streaming_function(lambda_client)
    resp = lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"chunks": 1, "delay": 0, "error": True}))
    events = list(resp["EventStream"])
    chunks = [e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e]
    assert chunks == [b"chunk0\n"]
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Unhandled"
    assert json.loads(complete["ErrorDetails"])["errorType"] == "Custom.Err"


def test_a_plain_invoke_of_a_streaming_function_gets_the_whole_response(lambda_client):
    name = streaming_function(lambda_client)
    resp = lambda_client.invoke(FunctionName=name,
                                Payload=json.dumps({"chunks": 2, "delay": 0.1}))
    assert "FunctionError" not in resp
    assert resp["Payload"].read() == b"chunk0\nchunk1\n"


def test_a_response_stream_url_streams_to_the_http_client(server, lambda_client):
    name = streaming_function(lambda_client)
    url = lambda_client.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")["FunctionUrl"]
    grant_public(lambda_client, name)
    started = time.monotonic()
    resp = fetch(server, url, "anything", stream=True)
    assert resp.status_code == 200
    assert resp.headers["x-streamed"] == "yes"
    assert resp.headers["content-type"] == "text/plain"
    assert resp.headers["set-cookie"] == "s=1"
    arrivals, body = [], b""
    for chunk in resp.raw.stream(64, decode_content=False):
        arrivals.append(time.monotonic() - started)
        body += chunk
    assert body == b"chunk0\nchunk1\nchunk2\n"
    assert arrivals[-1] - arrivals[0] > 0.7, arrivals
