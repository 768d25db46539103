#!/usr/bin/env python3
"""Client-seen cold-start latency of the lambda_runtime echo function under each
--function-credentials mode given (flint, assume-role: an STS AssumeRole of moto's per cold
start), one flint server per mode, moto's server on loopback. Each of 20 cold starts follows an
UpdateFunctionConfiguration (a new snapshot: a new environment).

    python3 role_cold_start_bench.py FLINT_BINARY BOOTSTRAP MODE [MODE...]
"""
import io, json, os, socket, statistics, subprocess, sys, tempfile, time, zipfile
import boto3
from botocore.config import Config

flint, bootstrap = sys.argv[1], sys.argv[2]
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
mp = port()
moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-p", str(mp)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, MOTO_ACCOUNT_ID="000000000000"))
time.sleep(3)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    info = zipfile.ZipInfo("bootstrap"); info.external_attr = (0o100755) << 16
    z.writestr(info, open(bootstrap, "rb").read())
code = buf.getvalue()
for mode in sys.argv[3:]:
    fp = port(); d = tempfile.mkdtemp()
    env = dict(os.environ, FLINT_INSTALL_RUNTIMES="off", AWS_ACCESS_KEY_ID="000000000000",
               AWS_SECRET_ACCESS_KEY="x", AWS_REGION="us-east-1", FLINT_FUNCTION_CREDENTIALS=mode)
    srv = subprocess.Popen([flint, "serve", "--listen", f"127.0.0.1:{fp}", "--data-dir", d,
                            "--aws-endpoint-url", f"http://127.0.0.1:{mp}", "--update-settle-ms", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    c = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{fp}", region_name="us-east-1",
                     aws_access_key_id="AKIDX", aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}))
    for _ in range(100):
        try: c.list_functions(); break
        except Exception: time.sleep(0.1)
    c.create_function(FunctionName="cold", Runtime="provided.al2023", Handler="x", Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": code})
    time.sleep(0.5)
    ts = []
    for i in range(21):
        c.update_function_configuration(FunctionName="cold", Environment={"Variables": {"NN": str(i)}})
        for _ in range(200):
            if c.get_function_configuration(FunctionName="cold").get("LastUpdateStatus") == "Successful": break
            time.sleep(0.01)
        t = time.perf_counter(); r = c.invoke(FunctionName="cold", Payload=b"{}"); r["Payload"].read()
        ts.append((time.perf_counter() - t) * 1000)
    ts = ts[1:]
    print(f"{mode}: cold invoke p50 {statistics.median(ts):.2f} ms, min {min(ts):.2f}, max {max(ts):.2f} ({len(ts)} cold starts)")
    srv.terminate(); srv.wait()
moto.terminate()
