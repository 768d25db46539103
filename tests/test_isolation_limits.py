"""Limits that keep one function or one client from wearing Flint down: idle and slowloris
connections to the API are closed (and their number capped), and an idle execution environment
runs nothing (it is frozen between invocations, as on Lambda)."""

import socket
import time
from pathlib import Path

import pytest

from conftest import FlintServer, create_function, invoke_json, make_zip, unique_name

TICKER = r'''
import os, subprocess


def handler(event, context):
    if event["action"] == "start":
        # A background process that outlives the invocation, ticking every 20 ms.
        subprocess.Popen(["/bin/sh", "-c", "while :; do echo x >> /tmp/ticks; sleep 0.02; done"],
                         start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        return {"started": True}
    try:
        with open("/tmp/ticks") as f:
            return {"ticks": sum(1 for _ in f)}
    except FileNotFoundError:
        return {"ticks": 0}
'''


def test_a_background_process_makes_no_progress_while_its_environment_is_idle(lambda_client):
    name = unique_name("ticker")
    create_function(lambda_client, name, zip_bytes=make_zip({"index.py": TICKER}))
    invoke_json(lambda_client, name, {"action": "start"})
    # Running while the environment is busy: ticks appear.
    deadline = time.monotonic() + 10
    while invoke_json(lambda_client, name, {"action": "count"})[1]["ticks"] < 3:
        assert time.monotonic() < deadline, "the background process never ran"
    _, before = invoke_json(lambda_client, name, {"action": "count"})
    # Idle for a second: unfrozen it would tick ~50 times.
    time.sleep(1.0)
    _, after = invoke_json(lambda_client, name, {"action": "count"})
    assert after["ticks"] - before["ticks"] < 20, (before, after)


@pytest.fixture(scope="module")
def strict(flint_bin: Path, tmp_path_factory) -> FlintServer:
    tmp = tmp_path_factory.mktemp("strict")
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log", extra_args=(
        "--function-network", "host", "--header-read-timeout-secs", "1",
        "--max-connections", "20"))
    srv.start()
    yield srv
    srv.stop()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_idle_and_slowloris_connections_are_closed(strict):
    idle = socket.create_connection(("127.0.0.1", strict.port))
    slow = socket.create_connection(("127.0.0.1", strict.port))
    slow.sendall(b"GET /2015-03-31/functions/ HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    for _ in range(20):
        try:
            slow.sendall(b"X-Slow: 1\r\n")
        except OSError:
            break
        time.sleep(0.2)
    assert closed_within(slow, 5)
    assert closed_within(idle, 5)
    assert time.monotonic() - started < 8


URL_HANDLER = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'hi'}\n"


def test_idle_and_slowloris_connections_to_a_function_url_are_closed(strict):
    """Function URLs are served on the API's listener: the same header deadline and cap hold."""
    client = strict.client()
    name = unique_name("urlidle")
    create_function(client, name, zip_bytes=make_zip({"index.py": URL_HANDLER}))
    host = client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    host = host.split("//", 1)[1].split("/", 1)[0]
    for sid, action, extra in (("url", "lambda:InvokeFunctionUrl", {"FunctionUrlAuthType": "NONE"}),
                               ("inv", "lambda:InvokeFunction", {"InvokedViaFunctionUrl": True})):
        client.add_permission(FunctionName=name, StatementId=sid, Principal="*", Action=action,
                              **extra)
    # A kept-alive connection, once answered and then left idle, is closed.
    idle = socket.create_connection(("127.0.0.1", strict.port))
    idle.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    idle.settimeout(30)
    first = idle.recv(4096)
    assert first.startswith(b"HTTP/1.1 200"), first
    assert b"hi" in first or b"hi" in idle.recv(4096)
    assert closed_within(idle, 5)
    # One header line every 200 ms never makes a request.
    slow = socket.create_connection(("127.0.0.1", strict.port))
    slow.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode())
    started = time.monotonic()
    for _ in range(20):
        try:
            slow.sendall(b"X-Slow: 1\r\n")
        except OSError:
            break
        time.sleep(0.2)
    assert closed_within(slow, 5)
    assert time.monotonic() - started < 8


def test_connections_past_the_cap_wait_and_are_served_once_idle_ones_are_closed(strict):
    hogs = [socket.create_connection(("127.0.0.1", strict.port)) for _ in range(25)]
    try:
        # The 20 admitted hogs are closed after the header timeout; the API answers again.
        client = strict.client(read_timeout=15)
        assert "Functions" in client.list_functions()
    finally:
        for h in hogs:
            h.close()


FD_HOG = r'''
import os, socket, time


def handler(event, context):
    children = []
    for _ in range(event["procs"]):
        pid = os.fork()
        if pid == 0:
            keep = [os.pipe() for _ in range(450)]
            time.sleep(600)
            os._exit(0)
        children.append(pid)
    time.sleep(1)  # let the children open their descriptors
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    deadline = time.monotonic() + event["seconds"]
    attempts = 0
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError:
            pass
        attempts += 1
    return {"attempts": attempts}
'''


def test_a_descriptor_heavy_function_does_not_slow_other_functions(lambda_client, python_fn):
    """With the host's network (the suite's mode) each Runtime API connection is traced to the
    environment's processes: a function with ~100 processes x 900 descriptors that connects in a
    loop must not stall the server (the check is bounded and runs off the async workers)."""
    import concurrent.futures
    import json

    hog = unique_name("fdhog")
    create_function(lambda_client, hog, zip_bytes=make_zip({"index.py": FD_HOG}),
                    MemorySize=1024, Timeout=60)
    invoke_json(lambda_client, python_fn, {})  # warm
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(invoke_json, lambda_client, hog,
                                  {"procs": 100, "seconds": 6})
            time.sleep(1.5)  # the hog's children are up and it is connecting
            latencies = []
            while not running.done():
                started = time.monotonic()
                invoke_json(lambda_client, python_fn, {})
                latencies.append(time.monotonic() - started)
            _, out = running.result()
        assert out.get("attempts", 0) > 0, out
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1] if len(latencies) > 1 else latencies[0]
        assert len(latencies) >= 20 and p99 < 0.25, \
            f"{len(latencies)} invokes, p99 {p99 * 1e3:.1f} ms, max {latencies[-1] * 1e3:.1f} ms"
    finally:
        lambda_client.delete_function(FunctionName=hog)
