"""Export of traces to an OpenTelemetry collector: `flint serve` with OTEL_EXPORTER_OTLP_ENDPOINT
(or `--otlp-endpoint`) sends the kept X-Ray segments as OTLP/HTTP JSON spans to
`<endpoint>/v1/traces`. The receiver here is a real HTTP server decoding the JSON body: the
function's segment and the subsegment its code sent to the X-Ray daemon address arrive as spans
of the trace the function saw (X-Ray's id without `1-` and dashes), the subsegment under the
function's span, the function as the resource. A collector that is down costs invokes nothing
and is reported in Flint's log."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import FlintServer, create_function, free_port, invoke_json, make_zip, unique_name

RAW_XRAY_APP = '''
import json, os, random, socket, time

def handler(event, context):
    header = os.environ["_X_AMZN_TRACE_ID"]
    fields = dict(p.split("=", 1) for p in header.split(";"))
    host, port = os.environ["AWS_XRAY_DAEMON_ADDRESS"].split(":")
    now = time.time()
    sub = {"name": "raw-work", "id": "%016x" % random.getrandbits(64), "type": "subsegment",
           "trace_id": fields["Root"], "parent_id": fields["Parent"], "start_time": now,
           "end_time": now + 0.001, "annotations": {"kind": "otlp"}}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'{"format": "json", "version": 1}\\n' + json.dumps(sub).encode(), (host, int(port)))
    return {"header": header, "sub": sub["id"]}
'''


class Collector:
    """An OTLP/HTTP JSON receiver: every request body posted to /v1/traces, decoded."""

    def __init__(self):
        self.requests = []
        self.paths = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.paths.append((self.path, self.headers.get("Content-Type")))
                    outer.requests.append(json.loads(body))
                reply = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def spans(self):
        """(resource attributes as a dict, span) for every span received."""
        out = []
        with self.lock:
            for r in self.requests:
                for rs in r.get("resourceSpans", []):
                    resource = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                    for ss in rs["scopeSpans"]:
                        out.extend((resource, s) for s in ss["spans"])
        return out

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def collector():
    c = Collector()
    yield c
    c.close()


@pytest.fixture(scope="module")
def exporting(flint_bin, tmp_path_factory, collector):
    d = tmp_path_factory.mktemp("otlp")
    srv = FlintServer(flint_bin, d / "data", d / "flint.log",
                      extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    srv.start()
    yield srv
    srv.stop()


def attrs(span):
    return {a["key"]: a["value"] for a in span.get("attributes", [])}


def test_segments_arrive_as_spans_of_the_functions_trace(exporting, collector):
    client = exporting.client()
    name = unique_name("otlp")
    create_function(client, name, zip_bytes=make_zip({"index.py": RAW_XRAY_APP}),
                    TracingConfig={"Mode": "Active"})
    _, out = invoke_json(client, name, {})
    fields = dict(p.split("=", 1) for p in out["header"].split(";"))
    assert fields["Sampled"] == "1"
    trace_id = fields["Root"][2:].replace("-", "")
    assert len(trace_id) == 32

    deadline = time.monotonic() + 20
    while True:
        mine = [(r, s) for r, s in collector.spans() if s["traceId"] == trace_id]
        ids = {s["spanId"] for _, s in mine}
        if {fields["Parent"], out["sub"]} <= ids:
            break
        assert time.monotonic() < deadline, f"spans of {trace_id} not received: {mine}"
        time.sleep(0.1)

    assert ("/v1/traces", "application/json") in collector.paths
    [(resource, function)] = [(r, s) for r, s in mine if s["spanId"] == fields["Parent"]]
    [(_, sub)] = [(r, s) for r, s in mine if s["spanId"] == out["sub"]]
    assert resource["service.name"] == {"stringValue": name}
    assert resource["cloud.platform"] == {"stringValue": "aws_lambda"}
    assert function["name"] == name and function["kind"] == 2
    assert "parentSpanId" not in function
    assert attrs(function)["aws.xray.origin"] == {"stringValue": "AWS::Lambda::Function"}
    assert attrs(function)["cloud.resource_id"]["stringValue"].endswith(f":function:{name}")
    assert int(function["endTimeUnixNano"]) >= int(function["startTimeUnixNano"]) > 1.6e18
    assert sub["name"] == "raw-work" and sub["parentSpanId"] == function["spanId"]
    assert attrs(sub)["kind"] == {"stringValue": "otlp"}


def test_a_collector_that_is_down_costs_invokes_nothing(flint_bin, tmp_path):
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint.log",
                      extra_args=["--otlp-endpoint", f"http://127.0.0.1:{free_port()}"])
    srv.start()
    try:
        client = srv.client()
        name = unique_name("otlpdown")
        create_function(client, name, zip_bytes=make_zip({"index.py": RAW_XRAY_APP}),
                        TracingConfig={"Mode": "Active"})
        for _ in range(3):
            started = time.monotonic()
            resp, out = invoke_json(client, name, {})
            assert resp["StatusCode"] == 200 and "FunctionError" not in resp
            assert time.monotonic() - started < 10
        deadline = time.monotonic() + 20
        while "OTLP trace export" not in srv.log_tail():
            assert time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.2)
        # Reported once, not per segment or batch.
        assert srv.log_tail(200_000).count("OTLP trace export") == 1
    finally:
        srv.stop()
