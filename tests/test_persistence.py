"""Every acknowledged write is durable: a server killed with SIGKILL and restarted on the same data
dir still has its functions (same configuration, same code) and runs them. These tests start
their own servers, so that killing one does not disturb the rest of the suite."""

import sqlite3
import subprocess

import pytest

from conftest import (
    FlintServer,
    code_sha256,
    create_function,
    invoke_json,
    make_zip,
    python_zip,
    random_account,
    unique_name,
    wait_active,
)


@pytest.fixture
def own_server(flint_bin, tmp_path, request):
    servers = []

    def start(port=None):
        srv = FlintServer(flint_bin, tmp_path / "data", tmp_path / "flint-serve.log", port=port)
        servers.append(srv)
        srv.start()
        # Attach this server's log to the report if the test fails.
        request.node._flint_server = srv
        request.node._flint_log_start = 0
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_functions_survive_sigkill_and_restart(own_server):
    first = own_server()
    client = first.client()
    name = unique_name("durable")
    zip_bytes = python_zip()
    create_function(client, name, zip_bytes=zip_bytes, Timeout=7,
                    Environment={"Variables": {"KEPT": "yes"}})
    _, payload = invoke_json(client, name, {"before": "kill"})
    assert payload == {"before": "kill"}
    before = client.get_function_configuration(FunctionName=name)

    first.kill()
    second = own_server()
    client = second.client()

    after = client.get_function_configuration(FunctionName=name)
    for key in ("FunctionArn", "CodeSha256", "CodeSize", "RevisionId", "Timeout", "MemorySize",
                "Environment", "Handler", "Runtime", "LastModified", "State"):
        assert after[key] == before[key], key
    assert after["CodeSha256"] == code_sha256(zip_bytes)
    assert name in [f["FunctionName"] for f in client.list_functions()["Functions"]]
    _, payload = invoke_json(client, name, {"after": "restart"})
    assert payload == {"after": "restart"}
    _, env = invoke_json(client, name, {"action": "env"})
    assert env["KEPT"] == "yes"


def test_updates_and_deletes_survive_sigkill(own_server):
    first = own_server()
    account = random_account()
    client = first.client(account=account)
    updated, deleted = unique_name("updated"), unique_name("deleted")
    create_function(client, updated)
    create_function(client, deleted)
    new_zip = make_zip({"index.py": "def handler(e, c):\n    return 'v2'\n"})
    client.update_function_code(FunctionName=updated, ZipFile=new_zip)
    wait_active(client, updated)
    client.update_function_configuration(FunctionName=updated, Description="after update")
    wait_active(client, updated)
    client.delete_function(FunctionName=deleted)

    first.kill()
    client = own_server().client(account=account)

    conf = client.get_function_configuration(FunctionName=updated)
    assert conf["CodeSha256"] == code_sha256(new_zip)
    assert conf["Description"] == "after update"
    _, payload = invoke_json(client, updated, {})
    assert payload == "v2"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=deleted)
    assert [f["FunctionName"] for f in client.list_functions()["Functions"]] == [updated]


def test_graceful_restart_keeps_functions_too(own_server):
    first = own_server()
    client = first.client()
    name = unique_name("graceful")
    create_function(client, name)
    first.stop()  # SIGTERM
    client = own_server().client()
    _, payload = invoke_json(client, name, {"still": "here"})
    assert payload == {"still": "here"}


def test_an_unreadable_record_is_moved_aside_and_reported_not_lost(own_server, tmp_path):
    first = own_server()
    client = first.client()
    kept, broken = unique_name("kept"), unique_name("broken")
    create_function(client, kept)
    create_function(client, broken)
    first.stop()

    # Damage one function's stored document, as a bad disk or a bad upgrade would.
    db = sqlite3.connect(tmp_path / "data" / "flint.db")
    with db:
        db.execute("UPDATE docs SET value = '{\"Name\": ' WHERE kind = 'function' AND key = ?",
                   (broken,))
    db.close()

    second = own_server()
    client = second.client()
    names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    assert kept in names and broken not in names
    _, payload = invoke_json(client, kept, {"still": "runs"})
    assert payload == {"still": "runs"}
    log = second.log_path.read_text(errors="replace")
    assert "moved aside" in log and broken in log, log[-3000:]
    second.stop()

    db = sqlite3.connect(tmp_path / "data" / "flint.db")
    aside = db.execute("SELECT kind, key, value, reason FROM moved_aside").fetchall()
    db.close()
    assert [(k, key) for k, key, _, _ in aside] == [("function", broken)]
    assert aside[0][2] == '{"Name": ', "the record is kept as it was"


def test_a_second_server_on_the_same_data_dir_is_refused(own_server, flint_bin, tmp_path):
    own_server()
    proc = subprocess.run(
        [str(flint_bin), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "another Flint is serving the data dir" in proc.stderr, proc.stderr
