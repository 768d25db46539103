"""CPU per warm invoke of a flint binary: start `flint serve`, create a provided.al2023 function
(the lambda_runtime echo bootstrap), warm it, then drive it with wrk (a fixed pre-signed request)
and divide flint's own CPU time (utime+stime of the server process, from /proc/PID/stat) by the
number of invokes wrk completed. Also printed: the function's own CPU per invoke (every process
under flint's sandboxes, the bootstraps, from /proc) and how many TCP connections the runtimes
opened to their Runtime APIs per 1,000 invokes (`PassiveOpens` of each environment's network
namespace: a runtime client that keeps its connection opens none).

    python3 cpu_per_invoke.py FLINT_BINARY BOOTSTRAP [SECONDS] [--connections N]
        [--payload-bytes N] [--concurrency N] [--event]

--payload-bytes sends (and the echo returns) a JSON string of about that size; --concurrency is
the function's reserved concurrency (default: the number of connections; 0 with --event measures
accepting alone: the events wait, throttled); --event sends
`Event` invokes (accepted, made durable, answered 202; delivery runs meanwhile and its CPU counts
in flint's).
"""
import argparse, io, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, zipfile

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from proc_cpu import descendants, ticks

ap = argparse.ArgumentParser()
ap.add_argument("flint")
ap.add_argument("bootstrap")
ap.add_argument("secs", nargs="?", type=int, default=10)
ap.add_argument("--connections", type=int, default=8)
ap.add_argument("--payload-bytes", type=int, default=0)
ap.add_argument("--concurrency", type=int, default=None)
ap.add_argument("--event", action="store_true",
                help="send InvocationType Event (202 once durable) instead of RequestResponse")
args = ap.parse_args()
flint, bootstrap, secs, conns = args.flint, args.bootstrap, args.secs, args.connections
concurrency = conns if args.concurrency is None else args.concurrency
hz = os.sysconf("SC_CLK_TCK")


def function_ticks(root):
    return sum(ticks(p) for p in descendants(root))


def passive_opens(root):
    """Sum of PassiveOpens over the distinct network namespaces of flint's descendants."""
    seen, total = set(), 0
    for p in descendants(root):
        try:
            ns = os.readlink(f"/proc/{p}/ns/net")
            if ns in seen:
                continue
            lines = open(f"/proc/{p}/net/snmp").read().splitlines()
        except OSError:
            continue
        seen.add(ns)
        tcp = [l.split() for l in lines if l.startswith("Tcp:")]
        total += int(tcp[1][tcp[0].index("PassiveOpens")])
    return total


s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
data = tempfile.mkdtemp()
# RUST_LOG=warn unless FLINT_BENCH_RUST_LOG says otherwise (`flint serve` alone logs at info:
# one access-log line per request).
# No background install of the managed runtimes' SDKs (npm/pip) competing for the CPUs during the
# run: the echo function is `provided`. (An environment variable, so older binaries ignore it.)
env = dict(os.environ, RUST_LOG=os.environ.get("FLINT_BENCH_RUST_LOG", "warn"),
           FLINT_INSTALL_RUNTIMES=os.environ.get("FLINT_INSTALL_RUNTIMES", "off"))
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
                      Handler="x", Code={"ZipFile": buf.getvalue()}, MemorySize=1024, Timeout=30)
    c.get_waiter("function_active_v2").wait(FunctionName="echo")
    c.put_function_concurrency(FunctionName="echo", ReservedConcurrentExecutions=concurrency)
    path = "/2015-03-31/functions/echo/invocations"
    if args.payload_bytes:
        body = json.dumps("x" * max(args.payload_bytes - 2, 0)).encode()
    else:
        body = b'{"hello":"world"}'
    req = AWSRequest(method="POST", url=url + path, data=body,
                     headers={"X-Amz-Invocation-Type": "Event"} if args.event else {})
    SigV4Auth(Credentials("test", "test"), "lambda", "us-east-1").add_auth(req)
    lua = os.path.join(data, "req.lua")
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in req.headers.items())
    body_file = os.path.join(data, "body.json")
    open(body_file, "wb").write(body)
    open(lua, "w").write(f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
                         f'wrk.method = "POST"\n{headers}')
    # Warm the environments.
    if concurrency:
        subprocess.run(["wrk", "-t1", f"-c{conns}", "-d2s", "-s", lua, url + path], capture_output=True)
    t0, f0, o0 = ticks(proc.pid), function_ticks(proc.pid), passive_opens(proc.pid)
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", "-s", lua, url + path],
                         capture_output=True, text=True).stdout
    t1, f1, o1 = ticks(proc.pid), function_ticks(proc.pid), passive_opens(proc.pid)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    lat = re.search(r"Latency\s+(\S+)", out).group(1)
    # The distribution's line, not a "+/- Stdev" column that happens to read 50%.
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    cpu_us = (t1 - t0) / hz * 1e6 / n
    fn_us = (f1 - f0) / hz * 1e6 / n
    print(f"{os.path.basename(flint)}: {conns} connections, {len(body)} B payload: {n} invokes in {secs} s "
          f"({rate}/s, mean latency {lat}, p50 {p50}, p99 {p99}), flint CPU {cpu_us:.1f} µs/invoke, "
          f"function CPU {fn_us:.1f} µs/invoke, runtime connections opened {(o1 - o0) * 1000 / n:.1f} "
          f"per 1000 invokes, load average {os.getloadavg()[0]:.2f}"
          + (f", NON-2XX {non2xx.group(1)}" if non2xx else ""))
finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    shutil.rmtree(data, ignore_errors=True)
