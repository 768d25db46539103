#!/usr/bin/env python3
"""The Node bootstrap's own part of a pre-initialised cold start, outside any sandbox: node is
started with Flint's bootstrap as a pre-initialised sandbox starts it (`_FLINT_PREINIT_FD=1023`,
a socket; `_FLINT_PREINIT_PAD`), and once it has said "r" the script sends the function's
environment and times hand-over → the bootstrap's connection to the Runtime API (accept) and
its `GET /next` (the request's head read), against a listening socket of its own. `--fresh`
starts node with the function's environment instead (a fresh start, for comparison). No
sandbox, no Flint: what this measures is node's time only (the same in debug and release).

    .venv/bin/python scripts/node_preinit_handover_bench.py --runtime-dir DIR --runs 15 [--esm]

DIR holds `node/index.mjs` (and `node/preinit/`), e.g. `crates/runtimes` of a checkout.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time

SPEC_FD = 1023


def one(runtime_dir, task, fresh, node):
    bootstrap = os.path.join(runtime_dir, "node", "index.mjs")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    fenv = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": task, "_HANDLER": "index.handler",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}", "LAMBDA_RUNTIME_DIR": runtime_dir}
    argv = [node, "--max-http-header-size=81920", bootstrap]
    if fresh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=fenv, cwd=task)
    else:
        ours, theirs = socket.socketpair()
        os.dup2(theirs.fileno(), SPEC_FD)
        theirs.close()
        env = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": task, "LAMBDA_RUNTIME_DIR": runtime_dir,
               "_FLINT_PREINIT_FD": str(SPEC_FD), "_FLINT_PREINIT_PAD": "x" * 32768}
        proc = subprocess.Popen(argv, env=env, cwd="/", pass_fds=(SPEC_FD,))
        os.close(SPEC_FD)
        if ours.recv(1) != b"r":
            raise SystemExit("the bootstrap did not say it was ready")
        time.sleep(0.3)  # as in the pool: it waits
        t0 = time.perf_counter()
        ours.sendall(json.dumps({"env": list(fenv.items()), "cwd": task}).encode())
        ours.close()
    conn, _ = srv.accept()
    t1 = time.perf_counter()
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            raise SystemExit("the bootstrap closed its connection")
        head += chunk
    t2 = time.perf_counter()
    proc.kill()
    proc.wait()
    conn.close()
    srv.close()
    return (t1 - t0) * 1e3, (t2 - t0) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtime-dir", required=True)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--esm", action="store_true", help="index.mjs rather than index.js")
    ap.add_argument("--fresh", action="store_true", help="a fresh start, not a pre-initialised one")
    ap.add_argument("--node", default="node")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as task:
        if args.esm:
            with open(os.path.join(task, "index.mjs"), "w") as f:
                f.write("export const handler = async (e) => e;\n")
        else:
            with open(os.path.join(task, "index.js"), "w") as f:
                f.write("exports.handler = async (e) => e;\n")
        runtime_dir = os.path.abspath(args.runtime_dir)
        res = [one(runtime_dir, task, args.fresh, args.node) for _ in range(args.runs)]
    acc = [r[0] for r in res]
    nxt = [r[1] for r in res]
    kind = "index.mjs" if args.esm else "index.js"
    mode = "fresh" if args.fresh else "pre-initialised"
    print(f"{mode} {kind}: connection p50 {statistics.median(acc):.2f} ms (min {min(acc):.2f}); "
          f"GET /next p50 {statistics.median(nxt):.2f} ms (min {min(nxt):.2f}); {args.runs} runs")


if __name__ == "__main__":
    main()
