"""CPU per warm invoke of a flint binary: start `flint serve`, create a provided.al2023 function
(the lambda_runtime echo bootstrap), warm it, then drive it with wrk (8 connections, a fixed
pre-signed request) and divide flint's own CPU time (utime+stime of the server process, from
/proc/PID/stat) by the number of invokes wrk completed.

    python3 cpu_per_invoke.py FLINT_BINARY BOOTSTRAP [SECONDS]
"""
import io, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, zipfile

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

flint, bootstrap = sys.argv[1], sys.argv[2]
secs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
data = tempfile.mkdtemp()
env = dict(os.environ, RUST_LOG="warn")
proc = subprocess.Popen([flint, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    url = f"http://127.0.0.1:{port}"
    c = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test")
    for _ in range(200):
        try:
            c.list_functions(); break
        except Exception:
            time.sleep(0.05)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap"); info.external_attr = 0o755 << 16
        z.writestr(info, open(bootstrap, "rb").read())
    c.create_function(FunctionName="echo", Runtime="provided.al2023", Role="arn:aws:iam::000000000000:role/r",
                      Handler="x", Code={"ZipFile": buf.getvalue()}, MemorySize=1024)
    c.get_waiter("function_active_v2").wait(FunctionName="echo")
    c.put_function_concurrency(FunctionName="echo", ReservedConcurrentExecutions=8)
    path = "/2015-03-31/functions/echo/invocations"
    body = b'{"hello":"world"}'
    req = AWSRequest(method="POST", url=url + path, data=body)
    SigV4Auth(Credentials("test", "test"), "lambda", "us-east-1").add_auth(req)
    lua = os.path.join(data, "req.lua")
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in req.headers.items())
    open(lua, "w").write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n{headers}')
    # Warm 8 environments.
    subprocess.run(["wrk", "-t1", "-c8", "-d2s", "-s", lua, url + path], capture_output=True)
    ticks = lambda: sum(int(x) for x in open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
    hz = os.sysconf("SC_CLK_TCK")
    t0 = ticks()
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{secs}s", "-s", lua, url + path],
                         capture_output=True, text=True).stdout
    t1 = ticks()
    n = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    lat = re.search(r"Latency\s+(\S+)", out).group(1)
    cpu_us = (t1 - t0) / hz * 1e6 / n
    print(f"{os.path.basename(flint)}: {n} invokes in {secs} s ({rate}/s, mean latency {lat}), "
          f"flint CPU {cpu_us:.1f} µs/invoke" + (f", NON-2XX {non2xx.group(1)}" if non2xx else ""))
finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    shutil.rmtree(data, ignore_errors=True)
