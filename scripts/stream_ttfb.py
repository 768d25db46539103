#!/usr/bin/env python3
"""Time to first byte of streamed chunks: a Node.js function (awslambda.streamifyResponse)
writes its high-resolution epoch time in each chunk, 20 chunks 50 ms apart; the client notes
when each arrives (boto3 invoke_with_response_stream, and a RESPONSE_STREAM function URL read
with http.client). Latency = arrival - write, same clock."""
import io, json, os, socket, statistics, subprocess, sys, tempfile, time, zipfile, http.client
import boto3
flint = sys.argv[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
data = tempfile.mkdtemp()
proc = subprocess.Popen([flint, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                         "--function-network", "host"],
                        env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
code = """
export const handler = awslambda.streamifyResponse(async (event, stream) => {
  for (let i = 0; i < 20; i++) {
    stream.write(JSON.stringify({t: performance.timeOrigin + performance.now()}) + "\\n");
    await new Promise(r => setTimeout(r, 50));
  }
  stream.end();
});
"""
try:
    url = f"http://127.0.0.1:{port}"
    c = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                     aws_access_key_id="000000000000", aws_secret_access_key="test")
    for _ in range(200):
        try: c.list_functions(); break
        except Exception: time.sleep(0.05)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z: z.writestr("index.mjs", code)
    c.create_function(FunctionName="s", Runtime="nodejs20.x", Role="arn:aws:iam::000000000000:role/r",
                      Handler="index.handler", Code={"ZipFile": buf.getvalue()})
    c.get_waiter("function_active_v2").wait(FunctionName="s")
    lat = []
    for run in range(4):
        out = c.invoke_with_response_stream(FunctionName="s", Payload=b"{}")
        pending = b""
        for ev in out["EventStream"]:
            if "PayloadChunk" in ev:
                now = time.time() * 1000
                pending += ev["PayloadChunk"]["Payload"]
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if run: lat.append(now - json.loads(line)["t"])
    lat.sort()
    print(f"InvokeWithResponseStream: chunk write→arrival p50 {statistics.median(lat):.3f} ms, "
          f"p90 {lat[int(len(lat)*0.9)]:.3f} ms, max {lat[-1]:.3f} ms (n={len(lat)})")
    u = c.create_function_url_config(FunctionName="s", AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    c.add_permission(FunctionName="s", StatementId="u", Action="lambda:InvokeFunctionUrl",
                     Principal="*", FunctionUrlAuthType="NONE")
    c.add_permission(FunctionName="s", StatementId="i", Action="lambda:InvokeFunction",
                     Principal="*", InvokedViaFunctionUrl=True)
    host = u["FunctionUrl"].split("//", 1)[1].split("/", 1)[0].split(":")[0]
    lat = []
    for run in range(4):
        h = http.client.HTTPConnection("127.0.0.1", port)
        h.request("GET", "/", headers={"Host": f"{host}:{port}"})
        r = h.getresponse()
        assert r.status == 200, (r.status, r.read())
        pending = b""
        while True:
            b = r.read1(65536)
            if not b: break
            now = time.time() * 1000
            pending += b
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if run: lat.append(now - json.loads(line)["t"])
        h.close()
    lat.sort()
    print(f"function URL (RESPONSE_STREAM): chunk write→arrival p50 {statistics.median(lat):.3f} ms, "
          f"p90 {lat[int(len(lat)*0.9)]:.3f} ms, max {lat[-1]:.3f} ms (n={len(lat)})")
finally:
    proc.terminate(); proc.wait()
