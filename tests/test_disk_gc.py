"""Disk that Flint gives back: code leaves the disk once nothing uses it — a deleted function's
zip and unpacked code (a secret in it included), a deleted layer's content and the merged /opt
trees built from it — while code shared with a function that still exists stays and keeps
running; and log streams older than the retention period are deleted."""

import io
import os
import stat
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from conftest import FlintServer, ROLE, invoke_json, unique_name, wait_active

HANDLER = '''
def handler(event, context):
    with open(event["path"]) as f:
        return {"read": f.read()}
'''


def stored_zip(files) -> bytes:
    """A zip whose entries are stored, not deflated: a secret in it is plain in the blob too."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 1, 12, 0, 0))
            info.create_system = 3
            info.external_attr = (0o100644 & 0xFFFF) << 16
            z.writestr(info, content)
    return buf.getvalue()


def data_extents(f):
    """(offset, length) of the parts of a file that hold data: the /tmp volume's image is a
    sparse file of gigabytes holding a few megabytes."""
    fd = f.fileno()
    size = os.fstat(fd).st_size
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:
            return  # only holes left
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end - start
        offset = end


def files_containing(root: Path, secret: bytes):
    """Every regular file under `root` (not following links) whose bytes contain `secret`."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                if not stat.S_ISREG(path.lstat().st_mode):
                    continue
                with open(path, "rb") as f:
                    for start, length in data_extents(f):
                        f.seek(start)
                        tail = b""
                        while length > 0 and (chunk := f.read(min(length, 1 << 20))):
                            if secret in tail + chunk:
                                found.append(path)
                                break
                            tail = chunk[-len(secret):]
                            length -= len(chunk)
                        if found and found[-1] == path:
                            break
            except OSError:
                continue  # removed while we walked
    return found


def wait_until_gone(root: Path, secret: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while found := files_containing(root, secret):
        assert time.monotonic() < deadline, f"still on disk after {timeout}s: {found}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gc_server(flint_bin: Path, tmp_path_factory) -> FlintServer:
    tmp = tmp_path_factory.mktemp("disk-gc")
    srv = FlintServer(flint_bin, tmp / "data", tmp / "flint-serve.log")
    srv.start()
    yield srv
    srv.stop()


def create(client, name, zip_bytes, **extra):
    client.create_function(FunctionName=name, Runtime="python3.11", Handler="index.handler",
                           Role=ROLE, Code={"ZipFile": zip_bytes}, **extra)
    wait_active(client, name)


def test_a_deleted_functions_code_leaves_the_disk_and_shared_code_stays(gc_server):
    client = gc_server.client()
    shared_secret = f"shared-secret-{uuid.uuid4().hex}".encode()
    own_secret = f"own-secret-{uuid.uuid4().hex}".encode()
    shared = stored_zip({"index.py": HANDLER, "secret.txt": shared_secret})
    own = stored_zip({"index.py": HANDLER, "secret.txt": own_secret})
    a, b, c = unique_name("gc-a"), unique_name("gc-b"), unique_name("gc-c")
    create(client, a, shared)
    create(client, b, shared)
    create(client, c, own)
    for name in (a, b, c):
        # An environment of each runs on the unpacked code when it is deleted.
        assert "secret" in invoke_json(client, name, {"path": "/var/task/secret.txt"})[1]["read"]
    data = gc_server.data_dir
    assert files_containing(data, own_secret), "the probe must see the code before the delete"

    client.delete_function(FunctionName=a)
    client.delete_function(FunctionName=c)
    # c's code is gone: a collection has run since a was deleted too.
    wait_until_gone(data, own_secret)
    assert files_containing(data, shared_secret), "b's code went with a's"
    # b still runs, on a fresh environment too (its unpacked code is whole).
    client.update_function_configuration(FunctionName=b, Environment={"Variables": {"FRESH": "1"}})
    wait_active(client, b)
    _, out = invoke_json(client, b, {"path": "/var/task/secret.txt"})
    assert out["read"] == shared_secret.decode()

    client.delete_function(FunctionName=b)
    wait_until_gone(data, shared_secret)


def test_replaced_code_and_a_deleted_layers_content_leave_the_disk(gc_server):
    client = gc_server.client()
    old_secret = f"old-code-{uuid.uuid4().hex}".encode()
    layer_secret = f"layer-secret-{uuid.uuid4().hex}".encode()
    layers = []
    for i, content in enumerate((layer_secret, b"other layer")):
        out = client.publish_layer_version(
            LayerName=unique_name(f"gc-layer{i}"),
            Content={"ZipFile": stored_zip({f"python/l{i}.txt": content})})
        layers.append(out)
    name = unique_name("gc-layered")
    # Two layers: /opt is a merged tree built from both (hard links to their files).
    create(client, name, stored_zip({"index.py": HANDLER, "secret.txt": old_secret}),
           Layers=[l["LayerVersionArn"] for l in layers])
    assert invoke_json(client, name, {"path": "/opt/python/l0.txt"})[1]["read"] == \
        layer_secret.decode()

    client.update_function_code(FunctionName=name,
                                ZipFile=stored_zip({"index.py": HANDLER}))
    wait_active(client, name)
    wait_until_gone(gc_server.data_dir, old_secret)

    first = layers[0]
    client.delete_layer_version(LayerName=first["LayerArn"].rsplit(":", 1)[1],
                                VersionNumber=first["Version"])
    # The function still uses the deleted layer version: it keeps working.
    assert invoke_json(client, name, {"path": "/opt/python/l0.txt"})[1]["read"] == \
        layer_secret.decode()
    assert files_containing(gc_server.data_dir, layer_secret)

    client.delete_function(FunctionName=name)
    wait_until_gone(gc_server.data_dir, layer_secret)


def test_log_streams_older_than_the_retention_are_deleted(flint_bin: Path, tmp_path: Path):
    srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log",
                      extra_args=("--log-retention-days", "7"))
    srv.start()
    name = unique_name("retained")
    try:
        client = srv.client()
        create(client, name, stored_zip({"index.py": HANDLER, "f.txt": b"x"}))
        invoke_json(client, name, {"path": "/var/task/f.txt"})
        # A second environment writes a second stream.
        client.update_function_configuration(FunctionName=name,
                                             Environment={"Variables": {"FRESH": "1"}})
        wait_active(client, name)
        invoke_json(client, name, {"path": "/var/task/f.txt"})
    finally:
        srv.stop()
    function_logs = srv.data_dir / "work" / "logs" / "000000000000" / "us-east-1" / name
    old, recent = sorted(function_logs.rglob("*.log"))
    eight_days_ago = time.time() - 8 * 86400
    os.utime(old, (eight_days_ago, eight_days_ago))
    # Retention is applied at start (and every 10 minutes).
    srv.start()
    try:
        deadline = time.monotonic() + 30
        while old.exists():
            assert time.monotonic() < deadline, "the expired stream is still there"
            time.sleep(0.1)
        assert not old.with_suffix(".idx").exists()
        assert recent.exists(), "a stream within the retention period was deleted"
    finally:
        srv.stop()
