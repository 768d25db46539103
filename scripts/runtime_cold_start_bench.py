#!/usr/bin/env python3
"""Cold start and warm latency of the managed runtimes (ruby3.3, java17, and python3.11 /
nodejs20.x for comparison), each an echo handler, against a running `flint serve`.

Cold: each run changes an environment variable so that the next invoke is a cold start, and
reads Lambda's own `Init Duration` (sandbox creation → the runtime's first `/next`) from the
REPORT line of `LogType: Tail`. Warm: sequential invokes through boto3 on one connection after a
warm-up; the p50 includes boto3's own per-call cost (~1-2 ms here), the same for every runtime,
so compare runtimes with each other rather than with `cargo bench`'s raw-client numbers.

    flint serve --listen 127.0.0.1:9111 --data-dir /tmp/rt-bench &
    .venv/bin/python scripts/runtime_cold_start_bench.py --endpoint http://127.0.0.1:9111 --runs 20

`--pause-ms` waits that long before each cold start (after the configuration change), so that
the sandbox pool has prepared its next sandbox, pre-initialised runtime included (see
crates/sandbox/src/preinit.rs; `FLINT_PREINIT_RUNTIMES=off` on the server turns those off).
"""

import argparse
import base64
import io
import re
import statistics
import subprocess
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

ROLE = "arn:aws:iam::000000000000:role/lambda"

JAVA_ECHO = """
package example;
import java.util.Map;
public class Echo {
    public static Map<String, Object> handle(Map<String, Object> event) { return event; }
}
"""


def client(endpoint):
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x",
                        config=Config(retries={"max_attempts": 0}, read_timeout=120))


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def java_zip():
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "example" / "Echo.java"
        src.parent.mkdir(parents=True)
        src.write_text(JAVA_ECHO)
        out = Path(tmp) / "classes"
        subprocess.run(["javac", "--release", "11", "-d", str(out), str(src)], check=True)
        return zip_of({str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.class")})


CASES = {
    "python3.11": ("index.handler", lambda: zip_of({"index.py": "def handler(e, c):\n    return e\n"})),
    "nodejs20.x": ("index.handler",
                   lambda: zip_of({"index.mjs": "export const handler = async (e) => e;\n"})),
    "ruby3.3": ("function.handler",
                lambda: zip_of({"function.rb": "def handler(event:, context:)\n  event\nend\n"})),
    "java17": ("example.Echo::handle", java_zip),
}


def wait(c, name):
    while True:
        conf = c.get_function_configuration(FunctionName=name)
        if conf["State"] == "Active" and conf.get("LastUpdateStatus") in (None, "Successful"):
            return
        time.sleep(0.02)


def cold_init_ms(c, name, i, pause_ms=0):
    c.update_function_configuration(FunctionName=name, Environment={"Variables": {"RUN": str(i)}})
    wait(c, name)
    time.sleep(pause_ms / 1000)
    out = c.invoke(FunctionName=name, LogType="Tail", Payload=b'{"k":1}')
    log = base64.b64decode(out["LogResult"]).decode()
    m = re.search(r"Init Duration: ([0-9.]+) ms", log)
    return float(m.group(1)) if m else None


def warm_ms(c, name, n):
    for _ in range(50):
        c.invoke(FunctionName=name, Payload=b'{"k":1}')["Payload"].read()
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        c.invoke(FunctionName=name, Payload=b'{"k":1}')["Payload"].read()
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warm", type=int, default=500)
    ap.add_argument("--only", default=",".join(CASES))
    ap.add_argument("--pause-ms", type=int, default=0)
    args = ap.parse_args()
    c = client(args.endpoint)
    for runtime in args.only.split(","):
        handler, make = CASES[runtime]
        name = f"rtbench-{runtime.replace('.', '')}-{uuid.uuid4().hex[:6]}"
        c.create_function(FunctionName=name, Runtime=runtime, Handler=handler, Role=ROLE,
                          Code={"ZipFile": make()}, MemorySize=512, Timeout=30)
        wait(c, name)
        inits = [v for v in (cold_init_ms(c, name, i, args.pause_ms) for i in range(args.runs)) if v is not None]
        p50, p99 = warm_ms(c, name, args.warm)
        print(f"{runtime:<11} Init Duration p50 {statistics.median(inits):7.1f} ms  "
              f"min {min(inits):7.1f} ms  ({len(inits)} cold starts);  "
              f"warm p50 {p50:.2f} ms  p99 {p99:.2f} ms ({args.warm} invokes, boto3)")


if __name__ == "__main__":
    main()
