#!/usr/bin/env python3
"""Cold start of a container image function vs the same binary as a zip, against a running
`flint serve` and a docker-registry this script starts.

    target/release/flint serve --data-dir /tmp/ib --function-network host > /tmp/ib.log 2>&1 &
    .venv/bin/python scripts/image_cold_start_bench.py --flint http://127.0.0.1:9000 --runs 20

The binary is the lambda_runtime fixture (target/fixtures/release/bootstrap, built by the test
suite). The image holds it with its shared libraries (ENTRYPOINT /app/bootstrap); the zip is a
`provided.al2023` function with it as `bootstrap`. Each run changes an environment variable
(UpdateFunctionConfiguration, waits for Successful) so that the next invoke is a cold start, and
reads `Init Duration` from the REPORT line of `LogType: Tail`. Also prints the first pull
(CreateFunction → Active) of the image.
"""

import argparse
import base64
import io
import re
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from oci_images import Registry, directory, host_program, layer, symlink  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/lambda"
REPO = Path(__file__).resolve().parent.parent


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(client, name):
    while True:
        c = client.get_function_configuration(FunctionName=name)
        if c["State"] == "Active" and c.get("LastUpdateStatus") != "InProgress":
            return
        if c["State"] == "Failed" or c.get("LastUpdateStatus") == "Failed":
            raise SystemExit(f"{name} failed: {c}")
        time.sleep(0.02)


def init_duration(client, name, n):
    client.update_function_configuration(FunctionName=name,
                                         Environment={"Variables": {"RUN": str(n)}})
    wait(client, name)
    resp = client.invoke(FunctionName=name, Payload=b'{"x":1}', LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    m = re.search(r"Init Duration: ([0-9.]+) ms", log)
    if not m:
        raise SystemExit(f"no Init Duration in {log!r}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flint", default="http://127.0.0.1:9000")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--bootstrap", default=str(REPO / "target/fixtures/release/bootstrap"))
    args = ap.parse_args()
    client = boto3.client("lambda", endpoint_url=args.flint, region_name="us-east-1",
                          aws_access_key_id="000000000000", aws_secret_access_key="x")
    registry = Registry(Path(tempfile.mkdtemp()), free_port())
    try:
        repo = f"bench-{uuid.uuid4().hex[:8]}"
        registry.push_image(repo, "latest", [
            layer([directory("usr/lib"), directory("usr/lib64"), symlink("lib", "usr/lib"),
                   symlink("lib64", "usr/lib64"), directory("tmp", 0o1777)]),
            layer(host_program(args.bootstrap, "app/bootstrap"))],
            entrypoint=["/app/bootstrap"], env=["PATH=/usr/bin:/bin"])
        image_fn, zip_fn = f"bench-img-{repo}", f"bench-zip-{repo}"
        started = time.monotonic()
        client.create_function(FunctionName=image_fn, Role=ROLE, PackageType="Image",
                               Code={"ImageUri": f"{registry.host}/{repo}:latest"})
        wait(client, image_fn)
        pull_ms = (time.monotonic() - started) * 1000
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            z.writestr(info, Path(args.bootstrap).read_bytes())
        client.create_function(FunctionName=zip_fn, Role=ROLE, Runtime="provided.al2023",
                               Handler="bootstrap", Code={"ZipFile": buf.getvalue()})
        wait(client, zip_fn)
        results = {"image": [], "zip": []}
        for n in range(args.runs):
            results["image"].append(init_duration(client, image_fn, n))
            results["zip"].append(init_duration(client, zip_fn, n))
        print(f"image CreateFunction -> Active (resolve, pull, unpack): {pull_ms:.0f} ms")
        for kind, values in results.items():
            values.sort()
            print(f"{kind}: Init Duration median {statistics.median(values):.2f} ms, "
                  f"p90 {values[int(len(values) * 0.9) - 1]:.2f} ms, "
                  f"min {values[0]:.2f} ms (n={len(values)})")
        for name in (image_fn, zip_fn):
            client.delete_function(FunctionName=name)
    finally:
        registry.stop()


if __name__ == "__main__":
    main()
