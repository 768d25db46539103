"""The comparison peer of cpu_per_invoke.py: the same echo bootstrap under cargo-lambda's emulator
(`cargo lambda watch --only-lambda-apis`: its Invoke API and Runtime API, the function started
by us against it, as its own banner says), driven by wrk the same way. Prints the emulator's CPU
per invoke, the function's, and how many TCP connections the function opened to the emulator
per 1,000 invokes (connections to the Runtime API port seen in TIME_WAIT/ESTABLISHED by `ss`).

    python3 cargo_lambda_per_invoke.py CARGO_LAMBDA BOOTSTRAP [SECONDS] [--connections N]
        [--payload-bytes N] [--functions N]

CARGO_LAMBDA is the `cargo-lambda` binary (cargo install cargo-lambda --version 1.9.2 --locked).
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, tempfile, time, urllib.request

from proc_cpu import descendants, ticks

ap = argparse.ArgumentParser()
ap.add_argument("cargo_lambda")
ap.add_argument("bootstrap")
ap.add_argument("secs", nargs="?", type=int, default=10)
ap.add_argument("--connections", type=int, default=8)
ap.add_argument("--payload-bytes", type=int, default=0)
ap.add_argument("--functions", type=int, default=1, help="function processes polling the emulator")
args = ap.parse_args()
hz = os.sysconf("SC_CLK_TCK")


def tree(root):
    return [root] + descendants(root)


def local_ports_to(port):
    """Client-side ports of TCP connections to 127.0.0.1:port, in any state."""
    out = subprocess.run(["ss", "-tanH", f"dst 127.0.0.1:{port}"], capture_output=True, text=True).stdout
    return {l.split()[3] for l in out.splitlines() if l.strip()}


s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
work = tempfile.mkdtemp()
# cargo lambda watch wants a Cargo project in its working directory, even without building it.
os.makedirs(os.path.join(work, "src"))
open(os.path.join(work, "Cargo.toml"), "w").write(
    '[package]\nname = "echo"\nversion = "0.1.0"\nedition = "2021"\n[[bin]]\nname = "echo"\npath = "src/main.rs"\n')
open(os.path.join(work, "src", "main.rs"), "w").write("fn main() {}\n")
banner = open(os.path.join(work, "banner.txt"), "w+")
emu = subprocess.Popen([args.cargo_lambda, "lambda", "watch", "--only-lambda-apis",
                        "--invoke-address", "127.0.0.1", "--invoke-port", str(port)],
                       cwd=work, stdout=banner, stderr=subprocess.STDOUT,
                       env=dict(os.environ, NO_COLOR="1"), start_new_session=True)
fns = []
try:
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); break
        except OSError:
            time.sleep(0.05)
    # Its banner names the Runtime API's address and the function ("_", the default function
    # the emulator routes bare Runtime API paths and .../functions/_/invocations to).
    runtime_api = None
    for _ in range(200):
        m = re.search(r"AWS_LAMBDA_RUNTIME_API=(\S+)", open(banner.name).read())
        if m:
            runtime_api = m.group(1); break
        time.sleep(0.05)
    if runtime_api is None:
        raise SystemExit("cargo lambda watch printed no AWS_LAMBDA_RUNTIME_API: " + open(banner.name).read())
    fenv = dict(os.environ, AWS_LAMBDA_FUNCTION_NAME="_", AWS_LAMBDA_FUNCTION_VERSION="1",
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024", AWS_LAMBDA_RUNTIME_API=runtime_api,
                RUST_LOG="warn")
    rt_port = int(re.search(r":(\d+)", runtime_api.split("//")[-1]).group(1))
    for _ in range(args.functions):
        fns.append(subprocess.Popen([args.bootstrap], env=fenv, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL))
    path = "/2015-03-31/functions/_/invocations"
    if args.payload_bytes:
        body = json.dumps("x" * max(args.payload_bytes - 2, 0)).encode()
    else:
        body = b'{"hello":"world"}'
    for _ in range(100):
        try:
            urllib.request.urlopen(urllib.request.Request(url + path, data=body, method="POST"), timeout=5).read()
            break
        except Exception:
            time.sleep(0.1)
    body_file = os.path.join(work, "body.json")
    open(body_file, "wb").write(body)
    lua = os.path.join(work, "req.lua")
    open(lua, "w").write(f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
                         'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    conns = args.connections
    subprocess.run(["wrk", "-t1", f"-c{conns}", "-d2s", "-s", lua, url + path], capture_output=True)
    emu_pids = tree(emu.pid)
    fn_pids = [p for f in fns for p in tree(f.pid)]
    seen = local_ports_to(rt_port)
    t0 = sum(ticks(p) for p in emu_pids)
    f0 = sum(ticks(p) for p in fn_pids)
    wrk = subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{args.secs}s", "--latency", "-s", lua, url + path],
                           stdout=subprocess.PIPE, text=True)
    new_ports = set()
    while wrk.poll() is None:
        new_ports |= local_ports_to(rt_port) - seen
        time.sleep(0.2)
    out = wrk.stdout.read()
    t1 = sum(ticks(p) for p in emu_pids)
    f1 = sum(ticks(p) for p in fn_pids)
    new_ports |= local_ports_to(rt_port) - seen
    # When the Runtime API shares the Invoke API's port, wrk's own connections are among them.
    opened = max(len(new_ports) - (conns if rt_port == port else 0), 0)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    if n == 0:
        raise SystemExit(f"cargo-lambda completed no invoke in {args.secs} s; wrk said:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    lat = re.search(r"Latency\s+(\S+)", out).group(1)
    # The distribution's line, not a "+/- Stdev" column that happens to read 50%.
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    print(f"cargo-lambda: {conns} connections, {len(body)} B payload: {n} invokes in {args.secs} s "
          f"({rate}/s, mean latency {lat}, p50 {p50}, p99 {p99}), emulator CPU "
          f"{(t1 - t0) / hz * 1e6 / n:.1f} µs/invoke, function CPU {(f1 - f0) / hz * 1e6 / n:.1f} µs/invoke, "
          f"runtime connections opened ≥{opened * 1000 / n:.1f} per 1000 invokes, load average "
          f"{os.getloadavg()[0]:.2f}" + (f", NON-2XX {non2xx.group(1)}" if non2xx else ""))
finally:
    for f in fns:
        f.kill()
        f.wait()
    os.killpg(emu.pid, signal.SIGTERM)
    try:
        emu.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(emu.pid, signal.SIGKILL)
    shutil.rmtree(work, ignore_errors=True)
