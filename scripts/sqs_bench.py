#!/usr/bin/env python3
"""SQS event source benchmark (issue 10): messages/s an SQS mapping processes end to end, against
moto's server, next to moto's own limit with a plain client.

1. moto alone: P plain boto3 clients (one process each) loop SendMessageBatch (10) →
   ReceiveMessage (10) → DeleteMessageBatch for S seconds: messages/s moto can carry.
2. Flint: a mapping (BatchSize 10) to a trivial python3.11 function; P producer processes send
   batches of 10 for S seconds; the rate is messages sent / time from the first send until the
   queue is empty again (every message run and deleted).
   The backlog is kept small on purpose: every moto call costs time in proportion to the
   messages the queue holds (it recomputes all queue attributes, counts included, several times
   per call), so a pre-filled queue of 10,000 measures moto, not the poller.
3. Idle latency: with the mapping idle (its pollers in long polls), one message is sent and the
   time until it has been deleted (the function ran) is taken, a few times.

Usage (a release build; moto_server from tests/requirements.txt):
    cargo build --release -p flint
    python3 scripts/sqs_bench.py [--seconds 15] [--clients 2] [--max-concurrency 0,5]
Environment: FLINT_BIN (default target/release/flint), MOTO_SERVER (default: next to python).
"""

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import make_zip  # noqa: E402 (the suite's zip helper)

REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "000000000000"
HANDLER = "def handler(event, context):\n    return None\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not listen within {timeout}s")
            time.sleep(0.05)


def sqs_client(endpoint):
    return boto3.session.Session().client(
        "sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCOUNT,
        aws_secret_access_key="x", config=Config(max_pool_connections=32,
                                                 retries={"max_attempts": 2}))


def fill(sqs, url, n):
    body = "x" * 100
    for start in range(0, n, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": body} for i in range(min(10, n - start))])


def counts(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


BODY = "x" * 100


def send_batch(sqs, url):
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": BODY} for i in range(10)])


def plain_worker(endpoint, url, seconds, out):
    """A plain client's loop: send 10, receive them, delete them."""
    sqs = sqs_client(endpoint)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        send_batch(sqs, url)
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if got:
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
        done += len(got)
    out.put(done)


def producer(endpoint, url, seconds, out):
    sqs = sqs_client(endpoint)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        send_batch(sqs, url)
        sent += 10
    out.put(sent)


def run_procs(target, endpoint, url, seconds, n):
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=target, args=(endpoint, url, seconds, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    return procs, out


def moto_alone(endpoint, seconds, clients):
    """moto's own limit: every message costs it a third of a SendMessageBatch, of a
    ReceiveMessage and of a DeleteMessageBatch, the backlog stays near zero (moto's calls cost
    time in proportion to the messages a queue holds)."""
    sqs = sqs_client(endpoint)
    url = sqs.create_queue(QueueName=f"plain-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    t0 = time.monotonic()
    procs, out = run_procs(plain_worker, endpoint, url, seconds, clients)
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / (time.monotonic() - t0)


def flint_run(endpoint, lam, fn, seconds, producers, max_concurrency):
    """Producers send for `seconds` while the mapping runs; the rate counts from the first send
    until the queue is empty again (every message run and deleted)."""
    sqs = sqs_client(endpoint)
    url = sqs.create_queue(QueueName=f"esm-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    kwargs = {"ScalingConfig": {"MaximumConcurrency": max_concurrency}} if max_concurrency else {}
    mapping = lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=arn,
                                              BatchSize=10, **kwargs)["UUID"]
    while lam.get_event_source_mapping(UUID=mapping)["State"] != "Enabled":
        time.sleep(0.1)
    # Warm the function up (its first environments) before the clock starts.
    send_batch(sqs, url)
    while counts(sqs, url) > 0:
        time.sleep(0.05)
    t0 = time.monotonic()
    procs, out = run_procs(producer, endpoint, url, seconds, producers)
    sent = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    sent_at = time.monotonic()
    backlog = counts(sqs, url)
    while counts(sqs, url) > 0:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    # Idle latency: the pollers sit in long polls now.
    latencies = []
    for _ in range(5):
        time.sleep(2)
        start = time.monotonic()
        sqs.send_message(QueueUrl=url, MessageBody="ping")
        while counts(sqs, url) > 0:
            time.sleep(0.005)
        latencies.append(time.monotonic() - start)
    lam.delete_event_source_mapping(UUID=mapping)
    return {"sent": sent, "per_s": sent / elapsed, "seconds": elapsed,
            "send_per_s": sent / (sent_at - t0), "backlog": backlog,
            "idle_latency_ms": [round(x * 1000) for x in latencies]}


def fake_run(endpoint, lam, fn, seconds, max_concurrency):
    """Against scripts/fake_sqs.py (an endless queue that costs nothing): deletions/s over
    `seconds`, after a warm-up."""
    import json
    import urllib.request

    def deleted():
        with urllib.request.urlopen(endpoint + "/stats") as r:
            return json.loads(r.read())["deleted"]

    kwargs = {"ScalingConfig": {"MaximumConcurrency": max_concurrency}} if max_concurrency else {}
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:fake-{uuid.uuid4().hex[:6]}"
    mapping = lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=arn,
                                              BatchSize=10, **kwargs)["UUID"]
    time.sleep(3)  # warm-up: environments started, pollers scaled out
    d0, t0 = deleted(), time.monotonic()
    time.sleep(seconds)
    d1, t1 = deleted(), time.monotonic()
    lam.delete_event_source_mapping(UUID=mapping)
    return (d1 - d0) / (t1 - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--clients", type=int, default=2,
                    help="plain clients, and producer processes for the Flint run")
    ap.add_argument("--fake", action="store_true",
                    help="an endless free queue (scripts/fake_sqs.py) instead of moto: the "
                         "poller's own limit")
    ap.add_argument("--max-concurrency", default="0",
                    help="comma-separated ScalingConfig.MaximumConcurrency values (0: unset)")
    args = ap.parse_args()

    flint_bin = os.environ.get("FLINT_BIN", str(REPO / "target/release/flint"))
    moto = os.environ.get("MOTO_SERVER") or str(Path(sys.executable).parent / "moto_server")
    if not Path(moto).is_file():
        moto = shutil.which("moto_server")
    tmp = Path(tempfile.mkdtemp(prefix="sqs-bench-"))
    moto_port, flint_port = free_port(), free_port()
    env = dict(os.environ, MOTO_ACCOUNT_ID=ACCOUNT)
    server = ([sys.executable, str(REPO / "scripts/fake_sqs.py"), str(moto_port)] if args.fake
              else [moto, "-H", "127.0.0.1", "-p", str(moto_port)])
    moto_proc = subprocess.Popen(server,
                                 stdout=open(tmp / "moto.log", "wb"), stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
    endpoint = f"http://127.0.0.1:{moto_port}"
    flint_env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCOUNT, AWS_SECRET_ACCESS_KEY="x",
                     AWS_REGION=REGION, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    flint_proc = subprocess.Popen(
        [flint_bin, "serve", "--listen", f"127.0.0.1:{flint_port}", "--data-dir",
         str(tmp / "data"), "--aws-endpoint-url", endpoint, "--function-network", "host"],
        stdout=open(tmp / "flint.log", "wb"), stderr=subprocess.STDOUT, env=flint_env,
        start_new_session=True)
    try:
        wait_port(moto_port, moto_proc, "moto_server")
        wait_port(flint_port, flint_proc, "flint serve")
        lam = boto3.session.Session().client(
            "lambda", endpoint_url=f"http://127.0.0.1:{flint_port}", region_name=REGION,
            aws_access_key_id="AKIDBENCH", aws_secret_access_key="x")
        name = f"sqs-bench-{uuid.uuid4().hex[:6]}"
        lam.create_function(FunctionName=name, Runtime="python3.11", Handler="index.handler",
                            Role=f"arn:aws:iam::{ACCOUNT}:role/r",
                            Code={"ZipFile": make_zip({"index.py": HANDLER})})
        while lam.get_function_configuration(FunctionName=name)["State"] != "Active":
            time.sleep(0.05)

        if args.fake:
            for mc in [int(x) for x in args.max_concurrency.split(",")]:
                rate = fake_run(endpoint, lam, name, args.seconds, mc)
                label = f"MaximumConcurrency {mc}" if mc else "no ScalingConfig"
                print(f"flint ({label}) on the endless fake queue: {rate:.0f} msg/s run and "
                      f"deleted ({args.seconds} s)", flush=True)
            return
        plain = moto_alone(endpoint, args.seconds, args.clients)
        print(f"moto alone: {plain:.0f} msg/s sent+received+deleted in batches of 10 "
              f"({args.clients} plain boto3 client processes, {args.seconds} s)", flush=True)
        for mc in [int(x) for x in args.max_concurrency.split(",")]:
            r = flint_run(endpoint, lam, name, args.seconds, args.clients, mc)
            label = f"MaximumConcurrency {mc}" if mc else "no ScalingConfig"
            print(f"flint ({label}): {r['sent']} messages sent at {r['send_per_s']:.0f}/s by "
                  f"{args.clients} producers, all run and deleted {r['seconds']:.1f} s after the "
                  f"first send = {r['per_s']:.0f} msg/s end to end (backlog when the producers "
                  f"stopped: {r['backlog']}); idle mapping, one message sent → deleted: "
                  f"{r['idle_latency_ms']} ms", flush=True)
    finally:
        for p in (flint_proc, moto_proc):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("SQS_BENCH_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    main()
