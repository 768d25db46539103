#!/usr/bin/env python3
"""coldprobe: how long Flint's managed runtimes take from exec to their first Runtime API `/next`.

Starts each bootstrap (crates/runtimes/python/bootstrap.py, crates/runtimes/node/index.mjs) the
way Flint launches it -- the program, arguments and environment that `managed_launch` in
crates/runtimes/src/registry.rs and `environment_variables` in crates/engine/src/environment.rs
produce -- with `AWS_LAMBDA_RUNTIME_API` pointing at a listener this script runs and a trivial
handler in a temporary task root, and times fork/exec -> the request line of
`GET /2018-06-01/runtime/invocation/next` arriving. The handler module is imported during that
time, as on Lambda. It also times exec -> the response to a first invocation (answering /next
with a small JSON event): what a caller of a cold start waits for, so work merely moved past
/next would show there. For comparison it times the bare interpreter (`python3.11 -c pass`,
`node -e 0`: exec -> exit) and a bare client that only connects and sends `/next` (exec -> request
line), the floor any bootstrap could reach. Variants run interleaved, so drift hits all alike.

The runtime dir is installed the way `install_bootstraps` does it (the embedded files, then the
Python bootstrap byte-compiled with each interpreter into __pycache__), into a temporary dir that
stands for /var/runtime. No sandbox is involved: namespaces, mounts and cgroups are not counted.

Usage (from the repo root):
    python3 /tmp/qos.py 0 &       # optional: hold /dev/cpu_dma_latency=0 (idle vCPUs halt here,
                                  # and waking one costs ~40 us per hop: numbers are steadier)
    python3 scripts/coldprobe.py                  # 30 runs of each variant, Python and Node
    python3 scripts/coldprobe.py -n 50 --only python --python /usr/bin/python3.11
    python3 scripts/coldprobe.py --no-precompile  # the Python bootstrap without cached bytecode
    python3 scripts/coldprobe.py --runtime-dir WORK_DIR/runtime   # a dir flint itself installed
    python3 scripts/coldprobe.py --compare-dir OLD   # also OLD's bootstraps, interleaved: a fair
                                  # before/after even on a busy machine (OLD: a runtime dir, e.g.
                                  # python/bootstrap.py + node/index.mjs from `git show REV:...`;
                                  # --compare-node-flags gives the node flags OLD was run with)

Prints, per variant, wall-clock min / p50 / p90 and the median CPU time (user + system, from
wait4) in milliseconds, and the bootstrap's overhead over each baseline at p50. On a busy machine
the wall times stretch with the run queue; the CPU times barely move, so compare those there. Keep PYTHON_FLAGS / NODE_FLAGS / runtime_env() in step with registry.rs (the
crate's tests check that this file names the same flags).
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIMES = os.path.join(REPO, "crates", "runtimes")
NEXT_LINE = b"GET /2018-06-01/runtime/invocation/next "
RESPONSE_LINE = b"POST /2018-06-01/runtime/invocation/coldprobe-1/response "
# The first invocation, as Flint's Runtime API hands it out (%d: the deadline in epoch ms).
INVOCATION = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Lambda-Runtime-Aws-Request-Id: coldprobe-1\r\n"
    b"Lambda-Runtime-Deadline-Ms: %d\r\n"
    b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:coldprobe\r\n"
    b"Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
    b"Content-Length: 17\r\n"
    b"\r\n"
    b'{"cold": "probe"}'
)

# As in crates/runtimes/src/registry.rs (PYTHON_FLAGS, NODE_FLAGS): interpreter flags put before
# the bootstrap's path.
PYTHON_FLAGS = []
NODE_FLAGS = ["--max-http-header-size=81920"]

# The files install_bootstraps writes (crates/runtimes/src/bootstrap.rs, FILES), relative to the
# runtime dir and to crates/runtimes.
RUNTIME_FILES = ["python/bootstrap.py", "python/flint_runtime_bootstrap.py", "node/index.mjs"]
# The module install_bootstraps byte-compiles for every Python interpreter (bootstrap.rs).
PYTHON_PRECOMPILED = "python/flint_runtime_bootstrap.py"

PY_HANDLER = "def handler(event, context):\n    return event\n"
NODE_HANDLER_CJS = "exports.handler = async (event) => event;\n"
NODE_HANDLER_ESM = "export const handler = async (event) => event;\n"


def lambda_env(runtime_id, task_root, runtime_dir, handler, api):
    """The variables crates/engine/src/environment.rs gives every runtime process."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": "coldprobe",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": runtime_dir,
        "_HANDLER": handler,
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/coldprobe",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "LANG": "en_US.UTF-8",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:%s:%s/lib:%s:%s/lib:/opt/lib"
        % (runtime_dir, runtime_dir, task_root, task_root),
        "AWS_ACCESS_KEY_ID": "ASIAAAAAAAAAAAAAAAAA",
        "AWS_SECRET_ACCESS_KEY": "A" * 40,
        "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2Vj" + "A" * 300,
        "AWS_EXECUTION_ENV": "AWS_Lambda_" + runtime_id,
    }


def runtime_env(family, major, runtime_dir):
    """The runtime-specific variables of managed_launch (registry.rs)."""
    if family == "python":
        return {"PYTHONPATH": runtime_dir}
    return {
        "NODE_PATH": "/opt/nodejs/node%d/node_modules:/opt/nodejs/node_modules:"
        "%s/node_modules:%s:/var/task" % (major, runtime_dir, runtime_dir)
    }


def interpreter_version(program, family):
    if family == "python":
        code = "import sys; print('%d.%d' % sys.version_info[:2])"
        out = subprocess.run([program, "-I", "-c", code], capture_output=True, text=True)
    else:
        out = subprocess.run([program, "--version"], capture_output=True, text=True)
    version = out.stdout.strip().lstrip("v")
    major, minor = version.split(".")[:2]
    return version, int(major), int(minor)


def install_runtime_dir(target, pythons, precompile):
    """What RuntimeRegistry::install_bootstraps does: the embedded files, then bytecode."""
    for relative in RUNTIME_FILES:
        source = os.path.join(RUNTIMES, relative)
        if not os.path.exists(source):
            continue  # an older tree without this file
        os.makedirs(os.path.dirname(os.path.join(target, relative)), exist_ok=True)
        shutil.copyfile(source, os.path.join(target, relative))
    module = os.path.join(target, PYTHON_PRECOMPILED)
    if precompile and os.path.exists(module):
        for python in pythons:
            subprocess.run(
                [python, "-I", "-c", PRECOMPILE_SCRIPT, module],
                check=True,
            )
    elif not precompile:
        # /var/runtime is read-only in the sandbox: a file where __pycache__ would go keeps the
        # interpreter from caching the bytecode itself here.
        open(os.path.join(os.path.dirname(module), "__pycache__"), "w").close()


# Kept identical to the script in crates/runtimes/src/bootstrap.rs (precompile_python).
PRECOMPILE_SCRIPT = (
    "import py_compile, sys\n"
    "py_compile.compile(sys.argv[1], doraise=True,"
    " invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)\n"
)


class Listener:
    """The Runtime API stand-in: accepts one connection per run and reads its request line."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]

    def wait_next(self, proc, respond=False, timeout=10.0):
        """Time the first /next arrives, in perf_counter_ns; raises if the process fails first.
        With `respond`, answers it with an invocation and returns the time its response's
        request line arrives instead.

        The process is killed before its connection is closed: a runtime that saw the close
        would reconnect, and that connection would pass for the next run's."""
        self.sock.settimeout(timeout)
        try:
            conn, _ = self.sock.accept()
        except socket.timeout:
            proc.kill()
            raise RuntimeError("no connection within %ss (exit code %s)" % (timeout, proc.poll()))
        with conn:
            conn.settimeout(timeout)
            data = b""
            while b"\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            arrived = time.perf_counter_ns()
            if respond and data.startswith(NEXT_LINE):
                conn.sendall(INVOCATION % int(time.time() * 1000 + 60000))
                data = data[data.index(b"\r\n\r\n") + 4:] if b"\r\n\r\n" in data else b""
                while not (RESPONSE_LINE in data and b"\r\n" in data):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                arrived = time.perf_counter_ns()
                expected = RESPONSE_LINE
            else:
                expected = NEXT_LINE
            proc.kill()
            proc.cpu_ms = reap(proc)
        self.drain()
        if expected not in data:
            raise RuntimeError("expected %r, got %r" % (expected, data[:300]))
        return arrived

    def drain(self):
        """Drops connections left in the backlog by a process that is gone."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.accept()[0].close()
        except (BlockingIOError, socket.timeout):
            pass
        finally:
            self.sock.setblocking(True)


def reap(proc):
    """Waits for `proc`; returns the CPU time (user + system, ms) it used in all."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (usage.ru_utime + usage.ru_stime) * 1000


def time_to_next(argv, env, listener, respond=False):
    """(wall ms from fork/exec to the /next request line, CPU ms the process used by then);
    with `respond`, to the request line of its response to the first invocation."""
    start = time.perf_counter_ns()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        arrived = listener.wait_next(proc, respond)
    except RuntimeError:
        _, err = proc.communicate()
        sys.stderr.write(err.decode("utf-8", "replace"))
        raise
    proc.stderr.close()
    # Killed right at /next: what it used after sending it (blocked in recv) is negligible.
    return (arrived - start) / 1e6, proc.cpu_ms


def time_to_exit(argv, env):
    """(wall ms from fork/exec to exit, CPU ms used)."""
    start = time.perf_counter_ns()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    cpu = reap(proc)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if proc.returncode != 0:
        raise RuntimeError("%s exited %d" % (argv, proc.returncode))
    return elapsed, cpu


def bare_client_argv(family, program, api):
    host, port = api.rsplit(":", 1)
    request = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % api
    if family == "python":
        code = (
            "import socket\n"
            "s = socket.create_connection(('%s', %s))\n"
            "s.sendall(b'%s')\n"
            "s.recv(1)\n" % (host, port, request)
        )
        return [program, "-c", code]
    code = (
        "const s = require('net').connect(%s, '%s', () => s.write('%s'));"
        "s.on('data', () => {}); s.on('error', () => {});" % (port, host, request)
    )
    return [program, "-e", code]


def summarize(samples):
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return ordered[0], statistics.median(ordered), p90


def probe(family, program, runs, runtime_dir, node_handler, listener, compare_dir=None,
          compare_node_flags=None):
    version, major, minor = interpreter_version(program, family)
    runtime_id = "python%d.%d" % (major, minor) if family == "python" else "nodejs%d.x" % major
    task_root = tempfile.mkdtemp(prefix="coldprobe-task-")
    try:
        if family == "python":
            with open(os.path.join(task_root, "lambda_function.py"), "w") as f:
                f.write(PY_HANDLER)
            handler = "lambda_function.handler"
            argv = [program] + PYTHON_FLAGS + [os.path.join(runtime_dir, "python/bootstrap.py")]
            bare = [program, "-c", "pass"]
        else:
            name = "index.mjs" if node_handler == "esm" else "index.js"
            with open(os.path.join(task_root, name), "w") as f:
                f.write(NODE_HANDLER_ESM if node_handler == "esm" else NODE_HANDLER_CJS)
            handler = "index.handler"
            argv = [program] + NODE_FLAGS + [os.path.join(runtime_dir, "node/index.mjs")]
            bare = [program, "-e", "0"]
        env = lambda_env(runtime_id, task_root, runtime_dir, handler, listener.address)
        env.update(runtime_env(family, major, runtime_dir))
        client = bare_client_argv(family, program, listener.address)

        variants = [
            ("bare interpreter (exec -> exit)", lambda: time_to_exit(bare, env)),
            ("bare client (exec -> /next)", lambda: time_to_next(client, env, listener)),
            ("bootstrap (exec -> /next)", lambda: time_to_next(argv, env, listener)),
            ("bootstrap (exec -> 1st response)", lambda: time_to_next(argv, env, listener, True)),
        ]
        if compare_dir is not None:
            old_env = dict(env, LAMBDA_RUNTIME_DIR=compare_dir)
            old_env.update(runtime_env(family, major, compare_dir))
            old_argv = list(argv)
            if family == "node" and compare_node_flags is not None:
                old_argv = [program] + compare_node_flags + [argv[-1]]
            old_argv[-1] = os.path.join(compare_dir, os.path.relpath(argv[-1], runtime_dir))
            variants.append(("compared bootstrap (exec -> /next)",
                             lambda: time_to_next(old_argv, old_env, listener)))
            variants.append(("compared (exec -> 1st response)",
                             lambda: time_to_next(old_argv, old_env, listener, True)))
        for _, run in variants:  # warm the page cache and any bytecode the task root gets
            run()
        wall = {label: [] for label, _ in variants}
        cpu = {label: [] for label, _ in variants}
        for _ in range(runs):
            for label, run in variants:
                elapsed, used = run()
                wall[label].append(elapsed)
                cpu[label].append(used)

        title = "%s %s (%s), %d runs" % (runtime_id, version, program, runs)
        if family == "node":
            title += ", %s handler" % node_handler
        print(title)
        print("  %-34s %8s %8s %8s   %8s" % ("wall ms", "min", "p50", "p90", "CPU p50"))
        for label, _ in variants:
            print("  %-34s %8.2f %8.2f %8.2f   %8.2f" % (
                (label,) + summarize(wall[label]) + (statistics.median(cpu[label]),)))
        boot = variants[2][0]
        for name, samples in (("wall", wall), ("CPU", cpu)):
            print(
                "  bootstrap overhead (%s, p50): +%.2f ms over the bare interpreter, +%.2f ms"
                " over the bare client" % (
                    name,
                    statistics.median(samples[boot]) - statistics.median(samples[variants[0][0]]),
                    statistics.median(samples[boot]) - statistics.median(samples[variants[1][0]]),
                )
            )
        print()
    finally:
        shutil.rmtree(task_root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=30, help="runs per variant (30)")
    parser.add_argument("--python", default="/usr/bin/python3.11", help="Python interpreter")
    parser.add_argument("--node", default="/usr/bin/node", help="Node.js interpreter")
    parser.add_argument("--only", choices=["python", "node"], help="probe one runtime only")
    parser.add_argument("--node-handler", choices=["cjs", "esm"], default="cjs",
                        help="the Node handler as index.js (CommonJS) or index.mjs (ES module)")
    parser.add_argument("--runtime-dir", help="use this installed runtime dir (e.g. one flint"
                        " installed under its work dir) instead of installing the repo's files")
    parser.add_argument("--compare-dir", help="also probe the bootstraps installed in this"
                        " runtime dir (e.g. an older version), interleaved with the others")
    parser.add_argument("--compare-node-flags", help="node's flags for --compare-dir, as one"
                        " string given with '=' (default: NODE_FLAGS; before this probe existed:"
                        " --compare-node-flags='--expose-gc --max-http-header-size=81920')")
    parser.add_argument("--no-precompile", action="store_true",
                        help="install without byte-compiling the Python bootstrap")
    args = parser.parse_args()

    own_dir = None
    runtime_dir = args.runtime_dir
    if runtime_dir is None:
        own_dir = tempfile.mkdtemp(prefix="coldprobe-runtime-")
        runtime_dir = own_dir
        pythons = [] if args.only == "node" else [args.python]
        install_runtime_dir(runtime_dir, pythons, not args.no_precompile)
    runtime_dir = os.path.abspath(runtime_dir)
    compare = os.path.abspath(args.compare_dir) if args.compare_dir else None
    listener = Listener()
    try:
        if args.only in (None, "python"):
            probe("python", args.python, args.runs, runtime_dir, args.node_handler, listener,
                  compare)
        if args.only in (None, "node"):
            flags = args.compare_node_flags.split() if args.compare_node_flags else None
            probe("node", args.node, args.runs, runtime_dir, args.node_handler, listener,
                  compare, flags)
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
