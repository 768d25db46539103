"""Response streaming end to end: a runtime streams through the Runtime API (chunked, errors as
trailers); InvokeWithResponseStream hands each chunk to boto3 as a PayloadChunk event as it
arrives (the first before the function has written the last), then InvokeComplete; a plain
Invoke gets the whole stream; a RESPONSE_STREAM function URL streams to an HTTP client with the
status and headers of AWS's prelude. The same for a Node.js function's
`awslambda.streamifyResponse` handler, whose writes go out as it makes them."""

import json
import socket
import time

from conftest import create_function, fixture_text, make_zip, unique_name
from test_function_urls import HANDLER, fetch, grant_public

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


# A Node.js function streaming with awslambda.streamifyResponse. `gate`: after its first write it
# waits at the test's TCP gate (functions share the host's network), so the test sees the first
# chunk arrive while the handler is provably still running.
NODE_STREAMING = make_zip({"index.mjs": '''
import net from 'node:net';
import { once } from 'node:events';

const gate = (port) => new Promise((resolve, reject) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('data', () => { s.destroy(); resolve(); });
  s.once('error', reject);
});

export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.rawPath !== undefined) {
    if (event.rawPath === '/csv') {
      responseStream.setContentType('text/csv');
      responseStream.end('a,b\\n1,2\\n');
      return;
    }
    const http = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201, headers: { 'content-type': 'text/plain', 'x-node': 'yes' }, cookies: ['n=1'],
    });
    http.write('first\\n');
    await gate(Number(event.queryStringParameters.gate));
    http.write('second\\n');
    http.end();
    return;
  }
  if (event.fail === 'before') throw new TypeError('nothing written');
  responseStream.setContentType('text/plain');
  if (event.mb) {
    const block = Buffer.alloc(64 * 1024, 'x');
    for (let i = 0; i < event.mb * 16; i++) {
      if (!responseStream.write(block)) await once(responseStream, 'drain');
    }
    responseStream.end();
    return;
  }
  responseStream.write('first\\n');
  if (event.gate) await gate(event.gate);
  if (event.fail === 'after') throw new RangeError('broke mid-stream');
  responseStream.write('second\\n');
  responseStream.end();
});
'''})


class Gate:
    """A TCP server a handler connects to and waits at until `open()` sends it a byte."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]

    def open(self):
        conn, _ = self.sock.accept()
        with conn:
            conn.sendall(b"go")
        self.sock.close()


def node_streaming_function(client):
    name = unique_name("nodestream")
    create_function(client, name, runtime="nodejs20.x", handler="index.handler",
                    zip_bytes=NODE_STREAMING, Timeout=30)
    return name


def test_node_streams_its_first_write_before_the_handler_finishes(lambda_client):
    name = node_streaming_function(lambda_client)
    gate = Gate()
    started = time.monotonic()
    resp = lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"gate": gate.port}))
    chunks, complete, first_at = [], None, None
    for event in resp["EventStream"]:
        if "PayloadChunk" in event:
            chunks.append(event["PayloadChunk"]["Payload"])
            if first_at is None:
                # The handler is waiting at the gate: this chunk cannot be its last.
                first_at = time.monotonic() - started
                assert chunks == [b"first\n"]
                gate.open()
        if "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    total = time.monotonic() - started
    assert b"".join(chunks) == b"first\nsecond\n"
    assert complete is not None and "ErrorCode" not in complete, complete
    assert first_at < total, (first_at, total)


def test_node_error_after_a_write_ends_the_stream_with_the_error(lambda_client):
    name = node_streaming_function(lambda_client)
    resp = lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"fail": "after"}))
    events = list(resp["EventStream"])
    chunks = [e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e]
    assert b"".join(chunks) == b"first\n"
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Unhandled"
    details = json.loads(complete["ErrorDetails"])
    assert details["errorType"] == "RangeError"
    assert details["errorMessage"] == "broke mid-stream"


def test_node_error_before_any_write_is_a_function_error(lambda_client):
    name = node_streaming_function(lambda_client)
    resp = lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"fail": "before"}))
    events = list(resp["EventStream"])
    assert not [e for e in events if "PayloadChunk" in e]
    assert json.loads(events[-1]["InvokeComplete"]["ErrorDetails"])["errorType"] == "TypeError"
    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"fail": "before"}))
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorMessage"] == "nothing written"


def test_node_streams_more_than_the_6_mb_of_a_buffered_response(lambda_client):
    name = node_streaming_function(lambda_client)
    mb = 8
    resp = lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"mb": mb}))
    size, complete, chunks = 0, None, 0
    for event in resp["EventStream"]:
        if "PayloadChunk" in event:
            payload = event["PayloadChunk"]["Payload"]
            assert payload == b"x" * len(payload)
            size += len(payload)
            chunks += 1
        if "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    assert size == mb * 1024 * 1024
    assert chunks > 1
    assert complete is not None and "ErrorCode" not in complete, complete


def test_node_response_stream_url_gets_the_prelude_and_streams_the_body(server, lambda_client):
    name = node_streaming_function(lambda_client)
    url = lambda_client.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")["FunctionUrl"]
    grant_public(lambda_client, name)
    gate = Gate()
    resp = fetch(server, url, f"prelude?gate={gate.port}", stream=True)
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "text/plain"
    assert resp.headers["x-node"] == "yes"
    assert resp.headers["set-cookie"] == "n=1"
    body = b""
    for chunk in resp.raw.stream(64, decode_content=False):
        if not body:
            # The handler is waiting at the gate: what came is its first write alone.
            assert chunk == b"first\n"
            gate.open()
        body += chunk
    assert body == b"first\nsecond\n"

    resp = fetch(server, url, "csv")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/csv"
    assert resp.content == b"a,b\n1,2\n"


def test_a_function_that_does_not_stream_sends_its_result_unread_to_a_stream_url(server,
                                                                              lambda_client):
    """Recorded (test_lambda_url_echo_invoke[RESPONSE_STREAM]): behind a RESPONSE_STREAM URL a
    handler that returns `{"statusCode": …, "body": …}` is not read as a response: the client
    gets that JSON itself, with 200."""
    name = unique_name("nostream")
    create_function(lambda_client, name, zip_bytes=HANDLER)
    url = lambda_client.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")["FunctionUrl"]
    grant_public(lambda_client, name)
    resp = fetch(server, url, "echo", method="POST", data=b"text",
                 headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    result = json.loads(resp.content)
    assert result["statusCode"] == 201 and result["headers"] == {"x-flint": "yes"}
    assert json.loads(result["body"])["body"] == "text"
    assert "x-flint" not in resp.headers
