"""Pre-initialised Python and Node runtimes (crates/sandbox/src/preinit.rs): an interpreter that
Flint started with its bootstrap before the function was known must look to the function exactly
like one started fresh for it. Two functions of the same runtime and configuration run the same
probe in one Flint: the first cold start is fresh (it tells the pool which runtime to keep
ready), the second starts in the pre-initialised sandbox kept for it; the test compares what each
probe sees field by field and fails on any difference beyond the values that differ between any
two environments (credentials, the Runtime API's port, names)."""

import json
import time

import pytest

from conftest import FlintServer, create_function, invoke_json, make_zip, unique_name

PY_PROBE = r'''
import os, resource, sys

RLIMITS = sorted(n for n in dir(resource) if n.startswith("RLIMIT_"))


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError as e:
        return "error: %s" % e.strerror


def _fds():
    out = {}
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass
    return out


def handler(event, context):
    raw = _read("/proc/self/environ", "rb")
    status = dict(l.split(":", 1) for l in _read("/proc/self/status").splitlines() if ":" in l)
    return {
        "environ_raw": raw.decode("utf-8", "surrogateescape"),
        "environ_matches_os_environ": raw == b"".join(
            k.encode() + b"=" + v.encode() + b"\0" for k, v in os.environ.items()),
        "os_environ": list(os.environ.items()),
        "cmdline": _read("/proc/self/cmdline", "rb").decode(),
        "argv": sys.argv,
        "orig_argv": getattr(sys, "orig_argv", None),
        "executable": sys.executable,
        "flags": str(sys.flags),
        "path": sys.path,
        "modules": sorted(sys.modules),
        "main_globals": sorted(vars(sys.modules["__main__"])),
        "ids": [os.getresuid(), os.getresgid(), os.getgroups()],
        "cwd": os.getcwd(),
        "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in RLIMITS},
        "limits": _read("/proc/self/limits"),
        "status": {k: status.get(k, "").strip() for k in (
            "Umask", "Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp", "Seccomp_filters",
            "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "SigBlk", "SigIgn", "SigCgt",
            "Threads", "NSpid")},
        "cgroup": _read("/proc/self/cgroup"),
        "memory_max": _read("/sys/fs/cgroup/memory.max"),
        "fds": _fds(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "mounts": sorted(" ".join(l.split()[4:6]) for l in _read("/proc/self/mountinfo").splitlines()),
        "tmp": sorted(os.listdir("/tmp")),
        "task": sorted(os.listdir("/var/task")),
    }
'''

# The Node probe, as a CommonJS module and as an ES module (the pre-initialised bootstrap loaded one
# of each before the function was known, to warm node's loaders: neither may leave a trace).
NODE_PROBE_BODY = r'''
const fs = require('node:fs');
const Module = require('node:module');

function read(path, enc) {
  try { return fs.readFileSync(path, enc); } catch (e) { return 'error: ' + e.code; }
}

const handler = async () => {
  const raw = fs.readFileSync('/proc/self/environ');
  const joined = Object.entries(process.env).map(([k, v]) => `${k}=${v}\0`).join('');
  const status = Object.fromEntries(read('/proc/self/status', 'utf8').split('\n')
    .filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
  const keep = ['Umask', 'Uid', 'Gid', 'Groups', 'NoNewPrivs', 'Seccomp', 'Seccomp_filters',
    'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'SigBlk', 'SigIgn', 'SigCgt', 'NSpid',
    'Threads'];
  const fds = {};
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try { fds[fd] = fs.readlinkSync('/proc/self/fd/' + fd); } catch (e) { /* the dir's own */ }
  }
  return {
    environ_raw: raw.toString('utf8'),
    environ_matches_os_environ: raw.toString('utf8') === joined,
    os_environ: Object.entries(process.env),
    cmdline: read('/proc/self/cmdline', 'utf8'),
    argv: process.argv,
    exec_argv: process.execArgv,
    exec_path: process.execPath,
    modules: Object.keys(require.cache).sort(),
    path_cache: Object.keys(Module._pathCache).sort(),
    module_children: Object.values(require.cache)
      .map((m) => [m.id, m.children.map((c) => c.id)]).sort(),
    active_handles: process._getActiveHandles().map((h) => h.constructor.name).sort(),
    module_load_list: process.moduleLoadList.slice().sort(),
    globals: Object.getOwnPropertyNames(globalThis).sort(),
    ids: [process.getuid(), process.geteuid(), process.getgid(), process.getegid(), process.getgroups()],
    cwd: process.cwd(),
    limits: read('/proc/self/limits', 'utf8'),
    status: Object.fromEntries(keep.map((k) => [k, status[k] ?? ''])),
    cgroup: read('/proc/self/cgroup', 'utf8'),
    memory_max: read('/sys/fs/cgroup/memory.max', 'utf8'),
    fds,
    pid: process.pid,
    ppid: process.ppid,
    mounts: read('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
      .map((l) => l.split(' ').slice(4, 6).join(' ')).sort(),
    tmp: fs.readdirSync('/tmp').sort(),
    task: fs.readdirSync('/var/task').sort(),
  };
};
'''

NODE_PROBE = NODE_PROBE_BODY + "exports.handler = handler;\n"
NODE_PROBE_ESM = ("import { createRequire } from 'node:module';\n"
                  "const require = createRequire(import.meta.url);\n"
                  + NODE_PROBE_BODY + "export { handler };\n")

# Values that differ between any two environments, whatever started them.
PER_ENVIRONMENT = {
    "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT", "_X_AMZN_TRACE_ID",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
}


def _normal_env(pairs, name):
    return [(k, "<per environment>" if k in PER_ENVIRONMENT else v.replace(name, "<fn>"))
            for k, v in pairs]


def _normal_environ_raw(raw, name):
    pairs = [entry.split("=", 1) for entry in raw.split("\0") if entry]
    return _normal_env(pairs, name)


def _normalise(probe, name):
    out = dict(probe)
    out["environ_raw"] = _normal_environ_raw(probe["environ_raw"], name)
    out["os_environ"] = _normal_env(probe["os_environ"], name)
    # Socket and pipe inode numbers differ between any two processes.
    out["fds"] = {fd: ("socket" if t.startswith("socket:") else "pipe" if t.startswith("pipe:")
                       else "anon_inode" if t.startswith("anon_inode:") else t)
                  for fd, t in probe["fds"].items()}
    return out


@pytest.fixture(scope="module", params=["host", "isolated"])
def preinit_server(request, flint_bin, session_tmp):
    network = request.param
    server = FlintServer(flint_bin, session_tmp / f"preinit-{network}-data",
                         session_tmp / f"preinit-{network}.log",
                         extra_args=["--function-network", network, "--preinit-runtimes", "on"],
                         extra_env={"RUST_LOG": "info,flint_sandbox=debug"})
    server.start()
    yield server
    server.stop()


def _log_has(server, text, since, timeout=20.0):
    """Waits until the server's log (from byte `since`) has `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(server.log_path, "rb") as f:
            f.seek(since)
            if text.encode() in f.read():
                return True
        time.sleep(0.05)
    return False


def _fresh_and_preinitialised(server, runtime, zip_bytes, handler):
    client = server.client()
    names = [unique_name("preinit-a"), unique_name("preinit-b")]
    config = dict(runtime=runtime, handler=handler, zip_bytes=zip_bytes, MemorySize=256,
                  Environment={"Variables": {"MY_SETTING": "same-for-both"}})
    for name in names:
        create_function(client, name, **config)
    mark = server.log_size()
    waits = "a pre-initialised %s runtime waits" % ("Python" if runtime.startswith("python") else "Node")
    _, fresh = invoke_json(client, names[0], {})
    assert isinstance(fresh, dict), fresh
    # The fresh start told the pool which runtime to keep ready: wait until it is.
    assert _log_has(server, waits, mark), server.log_tail()
    mark = server.log_size()
    resp, pre = invoke_json(client, names[1], {})
    assert isinstance(pre, dict), pre
    assert _log_has(server, "started in a pre-initialised", mark, timeout=5), server.log_tail()
    # The pool refills what was taken: wait, so that the next test's wait sees its own sandbox.
    assert _log_has(server, waits, mark), server.log_tail()
    return names, fresh, pre


def _compare(names, fresh, pre):
    # (The runtime itself changes os.environ during an invoke: _X_AMZN_TRACE_ID; so
    # environ_matches_os_environ is compared between the two, not asserted.)
    assert "_FLINT_PREINIT" not in pre["environ_raw"]
    a = _normalise(fresh, names[0])
    b = _normalise(pre, names[1])
    assert a.keys() == b.keys()
    differences = {k: _diff(a[k], b[k]) for k in a if a[k] != b[k]}
    assert not differences, json.dumps(differences, indent=1, default=str)[:8000]


def _diff(fresh, pre):
    """The part of a field that differs (whole values would bury it)."""
    if isinstance(fresh, dict) and isinstance(pre, dict):
        return {k: (fresh.get(k), pre.get(k)) for k in fresh.keys() | pre.keys()
                if fresh.get(k) != pre.get(k)}
    if isinstance(fresh, list) and isinstance(pre, list):
        only_fresh = [x for x in fresh if x not in pre]
        only_pre = [x for x in pre if x not in fresh]
        if only_fresh or only_pre:
            return {"fresh only": only_fresh, "pre-initialised only": only_pre}
        first = next(i for i, (x, y) in enumerate(zip(fresh, pre)) if x != y) \
            if len(fresh) == len(pre) else None
        return {"order differs from index": first}
    return (fresh, pre)


def test_python_preinitialised_runtime_is_indistinguishable(preinit_server):
    names, fresh, pre = _fresh_and_preinitialised(
        preinit_server, "python3.11", make_zip({"index.py": PY_PROBE}), "index.handler")
    _compare(names, fresh, pre)


def test_node_preinitialised_runtime_is_indistinguishable(preinit_server):
    names, fresh, pre = _fresh_and_preinitialised(
        preinit_server, "nodejs20.x", make_zip({"index.js": NODE_PROBE}), "index.handler")
    _compare(names, fresh, pre)


def test_node_preinitialised_runtime_is_indistinguishable_es_module(preinit_server):
    # nodejs22.x (its own AWS_EXECUTION_ENV, so a runtime of its own for the pool): the first
    # start is fresh although nodejs20.x's pre-initialised sandbox waits.
    names, fresh, pre = _fresh_and_preinitialised(
        preinit_server, "nodejs22.x", make_zip({"index.mjs": NODE_PROBE_ESM}), "index.handler")
    _compare(names, fresh, pre)


def test_a_startup_variable_of_its_own_makes_a_function_start_fresh(preinit_server):
    """PYTHONHASHSEED is read by the interpreter at its start: a function that sets it cannot use
    an interpreter started without it, and sees what its own value makes of the interpreter."""
    client = preinit_server.client()
    config = dict(runtime="python3.11", handler="index.handler",
                  zip_bytes=make_zip({"index.py": PY_PROBE}))
    warm = unique_name("preinit-warm")
    create_function(client, warm, **config)
    mark = preinit_server.log_size()
    invoke_json(client, warm, {})
    assert _log_has(preinit_server, "a pre-initialised", mark), preinit_server.log_tail()
    name = unique_name("preinit-seed")
    create_function(client, name, Environment={"Variables": {"PYTHONHASHSEED": "0"}}, **config)
    mark = preinit_server.log_size()
    _, probe = invoke_json(client, name, {})
    assert ["PYTHONHASHSEED", "0"] in probe["os_environ"]
    assert "hash_randomization=0" in probe["flags"], probe["flags"]
    with open(preinit_server.log_path, "rb") as f:
        f.seek(mark)
        assert b"started in a pre-initialised" not in f.read()


def test_preinit_runtimes_off_starts_every_interpreter_fresh(flint_bin, tmp_path):
    server = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint.log",
                         extra_args=["--preinit-runtimes", "off"],
                         extra_env={"RUST_LOG": "info,flint_sandbox=debug"}).start()
    try:
        client = server.client()
        mark = server.log_size()
        for _ in range(2):
            name = unique_name("preinit-off")
            create_function(client, name, runtime="python3.11", handler="index.handler",
                            zip_bytes=make_zip({"index.py": PY_PROBE}))
            _, probe = invoke_json(client, name, {})
            assert probe["pid"] == 2
        # The pool refilled after both takes (with it on, the runtime's pre-initialised sandbox
        # is prepared right after the first refill); nothing pre-initialised came.
        deadline = time.monotonic() + 20
        while True:
            with open(server.log_path, "rb") as f:
                f.seek(mark)
                log = f.read()
            if log.count(b"prepared a sandbox for the pool") >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert log.count(b"prepared a sandbox for the pool") >= 2, server.log_tail()
        assert b"pre-initialised" not in log
    finally:
        server.stop()
