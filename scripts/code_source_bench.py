#!/usr/bin/env python3
"""Code from S3 and hot reload, measured against a running `flint serve` and moto's server.

    moto_server -p 5000 &   # MOTO_ACCOUNT_ID=000000000000
    AWS_ACCESS_KEY_ID=000000000000 AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 \
        target/release/flint serve --aws-endpoint-url http://127.0.0.1:5000 --data-dir /tmp/b \
        > /tmp/flint.log 2>&1 &
    .venv/bin/python scripts/code_source_bench.py --flint http://127.0.0.1:9000 \
        --s3 http://127.0.0.1:5000 --log /tmp/flint.log

Prints, for a zip of N MB (incompressible data): CreateFunction with `ZipFile` vs with
`S3Bucket`/`S3Key` (median of --runs); and for a hot-reloaded Python function: the time from a
file write to Flint's "hot reload: ... retiring" log line, and the next (cold) invoke.
"""

import argparse
import io
import json
import os
import statistics
import tempfile
import time
import uuid
import zipfile

import boto3

ROLE = "arn:aws:iam::000000000000:role/lambda"


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="000000000000", aws_secret_access_key="x")


def make_zip(mb):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("index.py", "def handler(e, c):\n    return 'ok'\n")
        z.writestr("blob.bin", os.urandom(mb * 1024 * 1024))
    return buf.getvalue()


def timed(f):
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flint", default="http://127.0.0.1:9000")
    ap.add_argument("--s3", default="http://127.0.0.1:5000")
    ap.add_argument("--log", required=True)
    ap.add_argument("--mb", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    lam, s3 = client("lambda", a.flint), client("s3", a.s3)
    bucket = "bench-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    zipped = make_zip(a.mb)
    s3.put_object(Bucket=bucket, Key="code.zip", Body=zipped)

    def create(code):
        name = "b-" + uuid.uuid4().hex[:10]
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="index.handler",
                            Role=ROLE, Code=code)
        return name

    direct, from_s3 = [], []
    for _ in range(a.runs):
        direct.append(timed(lambda: create({"ZipFile": zipped})))
        from_s3.append(timed(lambda: create({"S3Bucket": bucket, "S3Key": "code.zip"})))
    print(f"CreateFunction, {a.mb} MB zip: ZipFile median {statistics.median(direct):.0f} ms, "
          f"S3 median {statistics.median(from_s3):.0f} ms (runs {a.runs})")

    d = tempfile.mkdtemp(prefix="hot-bench-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "index.py")

    def write(n):
        with open(path, "w") as f:
            f.write(f"def handler(e, c):\n    return {n}\n")
        os.chmod(path, 0o644)

    write(0)
    name = create({"S3Bucket": "hot-reload", "S3Key": d})
    while lam.get_function_configuration(FunctionName=name)["State"] != "Active":
        time.sleep(0.05)
    lam.invoke(FunctionName=name)
    seen, cold = [], []
    for n in range(1, a.runs + 1):
        start = os.path.getsize(a.log)
        t = time.perf_counter()
        write(n)
        while True:
            with open(a.log, "rb") as f:
                f.seek(start)
                if b"hot reload: " in f.read():
                    break
            time.sleep(0.002)
        seen.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        got = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
        cold.append((time.perf_counter() - t) * 1000)
        assert got == n, (got, n)
    print(f"hot reload: write -> environments retired median {statistics.median(seen):.0f} ms "
          f"(includes the 50 ms quiet period); next invoke (cold) median "
          f"{statistics.median(cold):.0f} ms (runs {a.runs})")


if __name__ == "__main__":
    main()
