#!/usr/bin/env python3
"""Cold start of a python3.11 function with and without the runtime's AWS SDK mounted
(`flint runtimes install`), against two running `flint serve`s: one whose runtimes dir has the
SDKs, one whose has none. Each run changes an environment variable so that the next invoke is a
cold start and reads `Init Duration` from the REPORT line of `LogType: Tail`; the two servers
alternate. Also times a handler that imports boto3 (what a user pays for using the SDK).

    FLINT_RUNTIMES_DIR=target/runtimes-test flint serve --listen 127.0.0.1:9101 --data-dir /tmp/a &
    FLINT_RUNTIMES_DIR=/tmp/empty flint serve --listen 127.0.0.1:9102 --data-dir /tmp/b &
    .venv/bin/python scripts/sdk_cold_start_bench.py --with http://127.0.0.1:9101 \\
        --without http://127.0.0.1:9102 --runs 20
"""

import argparse
import base64
import io
import re
import statistics
import time
import uuid
import zipfile

import boto3

PLAIN = "def handler(e, c):\n    return 1\n"
BOTO3 = "import boto3\ndef handler(e, c):\n    return boto3.__version__\n"


def client(endpoint):
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")


def zip_of(source):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", source)
    return buf.getvalue()


def wait(c, name):
    while True:
        conf = c.get_function_configuration(FunctionName=name)
        if conf["State"] == "Active" and conf.get("LastUpdateStatus") in (None, "Successful"):
            return
        time.sleep(0.02)


def cold_init_ms(c, name, i):
    c.update_function_configuration(FunctionName=name, Environment={"Variables": {"RUN": str(i)}})
    wait(c, name)
    out = c.invoke(FunctionName=name, LogType="Tail")
    log = base64.b64decode(out["LogResult"]).decode()
    m = re.search(r"Init Duration: ([0-9.]+) ms", log)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--with", dest="with_sdk", required=True)
    ap.add_argument("--without", required=True)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    cases = {}
    for label, endpoint, source in [("plain, SDK mounted", args.with_sdk, PLAIN),
                                    ("plain, no SDK", args.without, PLAIN),
                                    ("import boto3", args.with_sdk, BOTO3)]:
        c = client(endpoint)
        name = f"sdkbench-{uuid.uuid4().hex[:8]}"
        c.create_function(FunctionName=name, Runtime="python3.11", Handler="index.handler",
                          Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": zip_of(source)})
        wait(c, name)
        cases[label] = (c, name, [])
    for i in range(args.runs):
        for label, (c, name, samples) in cases.items():
            v = cold_init_ms(c, name, i)
            if v is not None:
                samples.append(v)
    for label, (_, _, samples) in cases.items():
        samples.sort()
        print(f"{label:22} Init Duration p50 {statistics.median(samples):7.2f} ms  "
              f"p90 {samples[int(len(samples) * 0.9) - 1]:7.2f} ms  (n={len(samples)})")


if __name__ == "__main__":
    main()
