"""The root a zip-packaged function sees, shaped like Lambda's rather than the host's: a minimal
/etc (Lambda's users, name service and resolver configuration, the loader cache, CA certificates
where Debian's and Amazon Linux's TLS stacks look, UTC) with nothing else of the host's /etc, and
/proc's host-revealing files masked; and /tmp limited as a whole by an ext4 image per environment
where btrfs is not available."""

import os
import time
import uuid
from pathlib import Path

import pytest

from conftest import FlintServer, create_function, invoke_json, make_zip, unique_name

# What Flint's /etc may list (crates/sandbox/src/etc.rs); the first group must be there.
REQUIRED = {"passwd", "group", "hosts", "nsswitch.conf", "resolv.conf", "ld.so.cache", "ssl"}
ALLOWED = REQUIRED | {"alternatives", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
                      "mtab", "os-release", "pki", "protocols", "services"}

PY_PROBE = '''
import getpass, os, pwd, grp, socket, ssl, time


def handler(event, context):
    ctx = ssl.create_default_context()
    with open("/proc/cmdline", "rb") as f:
        cmdline = f.read()
    return {
        "etc": sorted(os.listdir("/etc")),
        "exists": {p: os.path.exists(p) for p in event["paths"]},
        "cert_store": ctx.cert_store_stats(),
        "user": getpass.getuser(),
        "home": pwd.getpwuid(os.getuid()).pw_dir,
        "group": grp.getgrgid(os.getgid()).gr_name,
        "localhost": socket.gethostbyname("localhost"),
        "sandbox": socket.gethostbyname("sandbox.localdomain"),
        "https_port": socket.getservbyname("https"),
        "tz": time.strftime("%Z", time.localtime()),
        "cmdline": cmdline.decode(),
        "proc_hidden": {p: _read(p) for p in ("/proc/config.gz", "/proc/keys", "/proc/timer_list")},
        "proc_acpi": os.listdir("/proc/acpi") if os.path.isdir("/proc/acpi") else [],
        "etc_write": _try_write("/etc/passwd"),
    }


def _read(path):
    try:
        with open(path, "rb") as f:
            return len(f.read())
    except OSError:
        return 0


def _try_write(path):
    try:
        with open(path, "a") as f:
            f.write("x")
        return "ok"
    except OSError as e:
        return e.strerror
'''

NODE_PROBE = '''
const fs = require("fs");
const https = require("https");
const tls = require("tls");
const os = require("os");
exports.handler = async () => ({
  https: typeof https.request,
  roots: tls.rootCertificates.length,
  user: os.userInfo().username,
  etc: fs.readdirSync("/etc").sort(),
  caBundle: fs.readFileSync("/etc/pki/tls/certs/ca-bundle.crt", "utf8").includes("BEGIN CERTIFICATE"),
});
'''

HOST_ONLY = ["/etc/shadow", "/etc/ssh", "/etc/hostname", "/etc/fstab", "/etc/cron.d",
             "/etc/machine-id", "/etc/sudoers", "/etc/gshadow", "/etc/ld.so.preload"]


@pytest.fixture(scope="module")
def python_probe(lambda_client):
    name = unique_name("root-py")
    create_function(lambda_client, name, runtime="python3.12",
                    zip_bytes=make_zip({"index.py": PY_PROBE}), Timeout=15)
    return name


def probe(lambda_client, name):
    _, found = invoke_json(lambda_client, name, {"paths": HOST_ONLY + [
        "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/localtime"]})
    return found


def test_etc_lists_only_what_lambda_has(lambda_client, python_probe):
    found = probe(lambda_client, python_probe)
    etc = set(found["etc"])
    assert REQUIRED <= etc, sorted(REQUIRED - etc)
    assert {n for n in etc if not n.startswith("java-")} <= ALLOWED, sorted(etc - ALLOWED)


def test_the_hosts_secrets_and_configuration_are_out_of_sight(lambda_client, python_probe):
    found = probe(lambda_client, python_probe)
    visible = [p for p in HOST_ONLY if found["exists"][p]]
    assert visible == [], visible
    # /proc/cmdline (the host's boot command line) reads empty, as do the host's kernel
    # configuration, keys and timers; /proc/acpi lists nothing.
    assert found["cmdline"] == ""
    assert found["proc_hidden"] == {"/proc/config.gz": 0, "/proc/keys": 0, "/proc/timer_list": 0}
    assert found["proc_acpi"] == []


def test_etc_is_read_only(lambda_client, python_probe):
    # Not the sandbox user's, and a read-only bind besides.
    assert probe(lambda_client, python_probe)["etc_write"] in \
        ("Permission denied", "Read-only file system")


def test_tls_finds_the_ca_certificates(lambda_client, python_probe):
    found = probe(lambda_client, python_probe)
    assert found["exists"]["/etc/ssl/certs/ca-certificates.crt"]
    assert found["exists"]["/etc/pki/tls/certs/ca-bundle.crt"]
    # The default context loaded the bundle (x509_ca counts CA certificates).
    assert found["cert_store"]["x509_ca"] > 50, found["cert_store"]


def test_the_sandbox_user_has_a_name(lambda_client, python_probe):
    found = probe(lambda_client, python_probe)
    assert (found["user"], found["group"], found["home"]) == \
        ("sbx_user1051", "sbx_user1051", "/tmp")


ENTRYPOINT_PROBE = """
import os, pwd, grp, stat


def handler(event, context):
    st = os.stat("/lambda-entrypoint.sh")
    return {"owner": pwd.getpwuid(st.st_uid).pw_name, "uid": st.st_uid,
            "group": grp.getgrgid(st.st_gid).gr_name, "gid": st.st_gid,
            "mode": stat.filemode(st.st_mode), "me": os.getuid(),
            "dirs": {p: [os.stat(p).st_uid, os.stat(p).st_gid, stat.filemode(os.stat(p).st_mode)]
                     for p in ("/", "/opt", "/var", "/tmp", "/var/task", "/var/task/index.py",
                               "/var/task/lib", "/var/task/lib/x.py")},
            "tmp_write": open("/tmp/mine", "w").write("x"),
            "tmp_file_owner": os.stat("/tmp/mine").st_uid,
            "uid_map": open("/proc/self/uid_map").read().split("\\n"),
            "gid_map": open("/proc/self/gid_map").read().split("\\n")}
"""


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="an unprivileged user namespace maps one id: the file is the sandbox "
                           "user's there (README)")
@pytest.mark.parametrize("variables", [{}, {"PYTHONDONTWRITEBYTECODE": "1"}],
                         ids=["preinitialised", "fresh-start"])
def test_the_entrypoint_and_root_are_roots_as_on_lambda_without_the_hosts_root_mapped_in(
        lambda_client, variables):
    # Recorded on AWS (LocalStack's test_runtime_introspection_x86): root, 0, -rwxr-xr-x. A
    # PYTHON* variable keeps the function out of a pre-started interpreter (README).
    name = unique_name("root-entry")
    create_function(lambda_client, name,
                    zip_bytes=make_zip({"index.py": ENTRYPOINT_PROBE, "lib/x.py": ""}),
                    Environment={"Variables": variables})
    _, found = invoke_json(lambda_client, name, {})
    assert (found["owner"], found["uid"], found["group"], found["gid"], found["mode"]) == \
        ("root", 0, "root", 0, "-rwxr-xr-x"), found
    assert found["me"] == 993
    # The root Flint builds is root's too (AWS: /opt root:root drwxr-xr-x, /tmp drwxrwxrwt).
    # So is the function's code, as AWS recorded /var/task (root, 0, drwxr-xr-x).
    assert found["dirs"] == {"/": [0, 0, "drwxr-xr-x"], "/opt": [0, 0, "drwxr-xr-x"],
                             "/var": [0, 0, "drwxr-xr-x"], "/tmp": [0, 0, "drwxrwxrwt"],
                             "/var/task": [0, 0, "drwxr-xr-x"],
                             "/var/task/index.py": [0, 0, "-rw-r--r--"],
                             "/var/task/lib": [0, 0, "drwxr-xr-x"],
                             "/var/task/lib/x.py": [0, 0, "-rw-r--r--"]}, found
    # /tmp stays the function's to write in.
    assert (found["tmp_write"], found["tmp_file_owner"]) == (1, 993), found
    # Inside, 0 is the host's nobody, never its root.
    for line in found["uid_map"] + found["gid_map"]:
        if line.strip():
            inside, outside, count = line.split()
            assert outside != "0", found
    assert ["0", "65534", "1"] in [line.split() for line in found["uid_map"]], found


def test_names_services_and_time_zone_resolve_from_the_minimal_etc(lambda_client, python_probe):
    found = probe(lambda_client, python_probe)
    assert found["localhost"] == "127.0.0.1"
    assert found["sandbox"] == "127.0.0.1"
    assert found["https_port"] == 443
    assert found["tz"] == "UTC"


def test_node_loads_https_and_its_root_certificates(lambda_client):
    name = unique_name("root-node")
    create_function(lambda_client, name, runtime="nodejs20.x",
                    zip_bytes=make_zip({"index.js": NODE_PROBE}), Timeout=15)
    _, found = invoke_json(lambda_client, name, {})
    assert found["https"] == "function"
    assert found["roots"] > 50
    assert found["user"] == "sbx_user1051"
    assert found["caBundle"] is True
    etc = {n for n in found["etc"] if not n.startswith("java-")}  # a Debian JDK's configuration
    assert etc <= ALLOWED, sorted(etc - ALLOWED)


# ---------------------------------------------------------------------------------------------
# /tmp as a whole without btrfs: an ext4 image per environment (FLINT_SANDBOX_TMP=ext4)
# ---------------------------------------------------------------------------------------------

FILL = '''
import errno, os


def handler(event, context):
    chunk = b"x" * (1 << 20)
    written, error = 0, None
    listing = sorted(os.listdir("/tmp"))
    for n in range(event["files"]):
        try:
            with open("/tmp/fill-%d" % n, "wb") as f:
                for _ in range(event["mb_per_file"]):
                    f.write(chunk)
                    written += len(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            error = errno.errorcode.get(e.errno, str(e.errno))
            break
    for n in range(event["files"]):
        try:
            os.remove("/tmp/fill-%d" % n)
        except OSError:
            pass
    if "marker" in event:
        open("/tmp/" + event["marker"], "w").close()
    return {"written_mb": written >> 20, "error": error, "listing_before": listing}
'''


def _ext4_available() -> bool:
    return os.geteuid() == 0 and any(
        os.path.exists(os.path.join(d, "mkfs.ext4")) for d in ("/usr/sbin", "/sbin", "/usr/bin"))


def tmp_loops(images_dir: Path):
    """(loop device, backing file) of every loop device backed by a file in `images_dir`."""
    found = []
    for dev in Path("/sys/block").glob("loop*"):
        try:
            backing = (dev / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(images_dir) + "/"):
            found.append((dev.name, backing))
    return found


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def ext4_server(flint_bin, tmp_path_factory):
    if not _ext4_available():
        pytest.skip("the ext4 /tmp backend needs root and mkfs.ext4")
    tmp = tmp_path_factory.mktemp("ext4-tmp")
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log",
                      extra_env={"FLINT_SANDBOX_TMP": "ext4"}).start()
    yield srv
    srv.stop()


def images_dir(server) -> Path:
    return server.data_dir / "sandbox" / "tmp-volume" / "images"


def test_ext4_backend_limits_tmp_as_a_whole_with_enospc(ext4_server):
    assert "ext4 image" in ext4_server.log_tail(20000), "the ext4 backend did not start"
    client = ext4_server.client()
    name = unique_name("tmp-ext4")
    create_function(client, name, runtime="python3.12", zip_bytes=make_zip({"index.py": FILL}),
                    Timeout=120, MemorySize=256, EphemeralStorage={"Size": 512})
    # Six files of 100 MB: each file is far below the size, the total is above it.
    _, found = invoke_json(client, name, {"files": 6, "mb_per_file": 100})
    assert found["error"] == "ENOSPC", found
    assert 490 <= found["written_mb"] <= 512, found
    # A fresh /tmp is empty (no lost+found).
    assert found["listing_before"] == []
    # Deleting the files gave the space back: the same writes fill it again.
    _, again = invoke_json(client, name, {"files": 6, "mb_per_file": 100})
    assert again["error"] == "ENOSPC" and again["written_mb"] >= 490, again


def test_ext4_images_are_released_when_their_environment_ends(ext4_server):
    client = ext4_server.client()
    name = unique_name("tmp-ext4-end")
    create_function(client, name, runtime="python3.12", zip_bytes=make_zip({"index.py": FILL}),
                    Timeout=30, EphemeralStorage={"Size": 600})
    marker = f"marker-{uuid.uuid4().hex}"
    invoke_json(client, name, {"files": 0, "mb_per_file": 0, "marker": marker})
    images = images_dir(ext4_server)
    # Flint's mounts are the host's: find this environment's /tmp by the marker it wrote there.
    mnt = images.parent / "mnt"
    mine = [d.name for d in mnt.iterdir() if (d / marker).exists()]
    assert len(mine) == 1, mine
    image = str(images / f"{mine[0]}.img")
    assert image in {b for _, b in tmp_loops(images)}
    client.delete_function(FunctionName=name)
    wait_for(lambda: all(not b.startswith(image) for _, b in tmp_loops(images)),
             what=f"the loop device of {image} to go")
    assert not Path(image).exists()
    assert f" {mnt / mine[0]} " not in Path("/proc/self/mountinfo").read_text()


def test_ext4_leftovers_of_a_crash_are_cleaned_at_the_next_start_and_a_stop_leaves_none(
        flint_bin, tmp_path):
    if not _ext4_available():
        pytest.skip("the ext4 /tmp backend needs root and mkfs.ext4")
    env = {"FLINT_SANDBOX_TMP": "ext4"}
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_env=env).start()
    images = images_dir(srv)
    try:
        client = srv.client()
        name = unique_name("tmp-ext4-crash")
        create_function(client, name, runtime="python3.12",
                        zip_bytes=make_zip({"index.py": FILL}), Timeout=30)
        invoke_json(client, name, {"files": 1, "mb_per_file": 1})
        before = tmp_loops(images)
        assert before, "no ext4 /tmp in use"
        srv.kill()
    finally:
        srv.stop()
    # Killed: its mounts and loop devices are still there.
    assert tmp_loops(images), "nothing left behind to clean"
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_env=env).start()
    try:
        # Only the new run's images remain: none of the old ones (their files were deleted).
        left = [b for _, b in tmp_loops(images) if b.endswith("(deleted)")]
        assert left == [], left
        mounts = Path("/proc/self/mountinfo").read_text()
        mnt = str(images.parent / "mnt") + "/"
        assert mounts.count(" " + mnt) == len(tmp_loops(images)), (mounts, tmp_loops(images))
    finally:
        srv.stop()
    # A clean stop leaves nothing behind: no mounts, no loop devices.
    wait_for(lambda: tmp_loops(images) == [], what="the loop devices to go at shutdown")
    assert str(images.parent / "mnt") not in Path("/proc/self/mountinfo").read_text()


def test_a_clean_stop_unmounts_the_btrfs_tmp_volume(flint_bin, tmp_path):
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log").start()
    mnt = srv.data_dir / "sandbox" / "tmp-volume" / "mnt"
    try:
        if "btrfs quota" not in srv.log_tail(20000):
            pytest.skip("the btrfs /tmp backend is not in use here")
        client = srv.client()
        name = unique_name("tmp-btrfs-stop")
        create_function(client, name, runtime="python3.12",
                        zip_bytes=make_zip({"index.py": FILL}), Timeout=30)
        invoke_json(client, name, {"files": 1, "mb_per_file": 1})
        assert f" {mnt} " in Path("/proc/self/mountinfo").read_text()
    finally:
        srv.stop()
    # The process is gone: its volume must not outlive it on the host.
    assert f" {mnt} " not in Path("/proc/self/mountinfo").read_text()
