"""Isolated vs host network, measured through boto3 against a real `flint serve` (any build):
Init Duration of a `provided` function (Lambda's REPORT line: sandbox creation -> first /next),
warm invoke latency on one client, and Flint's CPU per warm invoke (utime + stime of the
`flint serve` process from /proc/PID/stat, divided by the invokes: the number that survives a
noisy machine). Not a replacement for `cargo bench -p flint --bench invoke` (a raw HTTP client
whose own cost stays out of the latency); for when a release build is not at hand.

usage: .venv/bin/python crates/flint/benches/isolation_modes.py host|isolated [WARM_INVOKES] [COLD_STARTS]
env: FLINT_BIN (default target/debug/flint), FLINT_BENCH_RUST_BOOTSTRAP
     (default target/fixtures/bootstrap-mt, see BENCHMARKS.md "Reproduce")
"""

import base64
import io
import os
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import FlintServer  # noqa: E402

mode = sys.argv[1]
warm_n = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
cold_n = int(sys.argv[3]) if len(sys.argv) > 3 else 20
binary = Path(os.environ.get("FLINT_BIN", ROOT / "target/debug/flint"))
bootstrap = Path(os.environ.get("FLINT_BENCH_RUST_BOOTSTRAP",
                                ROOT / "target/fixtures/bootstrap-mt"))
tmp = Path(tempfile.mkdtemp(prefix=f"flint-bench-{mode}-"))
srv = FlintServer(binary, tmp / "data", tmp / "flint.log",
                  extra_args=["--function-network", mode], extra_env={"RUST_LOG": "warn"})
srv.start()
try:
    c = srv.client("123456789012")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, bootstrap.read_bytes())
    c.create_function(FunctionName="bench", Runtime="provided.al2023", Handler="x",
                      Role="arn:aws:iam::123456789012:role/r", Code={"ZipFile": buf.getvalue()})

    def settled():
        for _ in range(500):
            cfg = c.get_function(FunctionName="bench")["Configuration"]
            if cfg["State"] == "Active" and cfg.get("LastUpdateStatus") in (None, "Successful"):
                return
            time.sleep(0.02)
        raise RuntimeError("function not Active")

    def cpu_seconds():
        fields = Path(f"/proc/{srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    settled()
    for _ in range(200):
        c.invoke(FunctionName="bench", Payload=b'{"bench":true}')
    latencies = []
    cpu0 = cpu_seconds()
    for _ in range(warm_n):
        started = time.perf_counter()
        c.invoke(FunctionName="bench", Payload=b'{"bench":true}')
        latencies.append(time.perf_counter() - started)
    cpu = (cpu_seconds() - cpu0) / warm_n
    latencies.sort()
    inits = []
    for i in range(cold_n):
        c.update_function_configuration(FunctionName="bench",
                                        Environment={"Variables": {"ITER": str(i)}})
        settled()
        # The pool refills its prepared sandbox between cold starts, as between real ones.
        time.sleep(0.3)
        r = c.invoke(FunctionName="bench", Payload=b'{"bench":true}', LogType="Tail")
        m = re.search(r"Init Duration: ([\d.]+) ms", base64.b64decode(r["LogResult"]).decode())
        if m:
            inits.append(float(m.group(1)))
    inits.sort()
    print(f"{mode}: warm p50 {latencies[warm_n // 2] * 1e3:.3f} ms p99 "
          f"{latencies[int(warm_n * 0.99)] * 1e3:.3f} ms ({warm_n} invokes, boto3); "
          f"Flint CPU {cpu * 1e6:.0f} us/invoke; Init Duration p50 {inits[len(inits) // 2]:.2f} ms "
          f"min {inits[0]:.2f} max {inits[-1]:.2f} ({len(inits)} cold starts); "
          f"load {os.getloadavg()[0]:.1f}")
finally:
    srv.stop()
