#!/usr/bin/env python3
"""Init Duration of a `provided` function with each /tmp backend (FLINT_SANDBOX_TMP=btrfs|ext4),
alternating: starts its own `flint serve` per run (default network, `isolated`).

    .venv/bin/python scripts/tmp_backend_bench.py --flint target/debug/flint --rounds 3

The function is the lambda_runtime fixture (target/fixtures/bootstrap-mt, see BENCHMARKS.md
"Reproduce") as `bootstrap` of a `provided.al2023` zip with the default EphemeralStorage (512 MB).
Each cold start follows UpdateFunctionConfiguration (waits for Successful), then a 0.3 s pause
so the pools refill as between real cold starts; `Init Duration` comes from the REPORT line of
`LogType: Tail`. Then one cold start with a size no environment used yet (1,234 MB): with the
ext4 backend the image of a new size is made on the cold path (the pool keeps sizes in use).
"""

import argparse
import base64
import io
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::000000000000:role/lambda"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zip_of(bootstrap: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        z.writestr(info, bootstrap.read_bytes())
    return buf.getvalue()


def one_run(flint: Path, backend: str, code: bytes, cold_starts: int):
    data = Path(tempfile.mkdtemp(prefix=f"tmpbench-{backend}-"))
    port = free_port()
    env = {"FLINT_SANDBOX_TMP": backend, "RUST_LOG": "warn", "FLINT_INSTALL_RUNTIMES": "off",
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    log = open(data / "flint.log", "wb")
    proc = subprocess.Popen([str(flint), "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data / "data")], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        c = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                         aws_access_key_id="bench", aws_secret_access_key="bench",
                         config=Config(retries={"max_attempts": 0}, read_timeout=60))
        name = "bench-tmp"
        c.create_function(FunctionName=name, Runtime="provided.al2023", Handler="x", Role=ROLE,
                          Code={"ZipFile": code})

        def wait():
            while True:
                conf = c.get_function_configuration(FunctionName=name)
                if conf["State"] == "Active" and conf.get("LastUpdateStatus") in (None, "Successful"):
                    return
                time.sleep(0.02)

        def cold(i, **extra):
            c.update_function_configuration(FunctionName=name,
                                            Environment={"Variables": {"BENCH_RUN": str(i)}},
                                            **extra)
            wait()
            time.sleep(0.3)
            r = c.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
            m = re.search(r"Init Duration: ([0-9.]+) ms", base64.b64decode(r["LogResult"]).decode())
            return float(m.group(1)) if m else None

        wait()
        c.invoke(FunctionName=name, Payload=b"{}")
        inits = sorted(x for x in (cold(i) for i in range(cold_starts)) if x is not None)
        new_size = cold(cold_starts, EphemeralStorage={"Size": 1234})
        return inits, new_size
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        subprocess.run(["rm", "-rf", str(data)], check=False, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flint", default=str(REPO / "target/debug/flint"))
    ap.add_argument("--bootstrap", default=str(REPO / "target/fixtures/bootstrap-mt"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-starts", type=int, default=20)
    args = ap.parse_args()
    code = zip_of(Path(args.bootstrap))
    for r in range(1, args.rounds + 1):
        for backend in ("btrfs", "ext4"):
            inits, new_size = one_run(Path(args.flint), backend, code, args.cold_starts)
            print(f"{backend} #{r}: Init Duration p50 {statistics.median(inits):.2f} ms  "
                  f"min {inits[0]:.2f}  max {inits[-1]:.2f}  (n={len(inits)}); "
                  f"first cold start of a new size {new_size:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
