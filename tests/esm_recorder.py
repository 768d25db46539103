"""A function that reports every event it gets to the suite's callback server, for the event
source mapping tests: `Recorder(client, callback_server, code, prefix, mode)` creates it (its
`index.py` is `code`, which reads TOKEN, MODE and CALLBACK_URL from its environment), and
`events()` / `records()` / `wait_*` read what it reported."""

import json
import time
import uuid

from conftest import create_function, make_zip, unique_name


class Recorder:
    def __init__(self, client, callback_server, code, prefix, mode="raise"):
        self.token = uuid.uuid4().hex
        self.name = unique_name(prefix)
        self.callback_server = callback_server
        create_function(client, self.name, zip_bytes=make_zip({"index.py": code}),
                        Environment={"Variables": {"TOKEN": self.token, "MODE": mode,
                                                   "CALLBACK_URL": callback_server.url}})

    def events(self):
        out = []
        for body in list(self.callback_server.received):
            if self.token in body:
                msg = json.loads(body)
                if msg["token"] == self.token:
                    out.append(msg["event"])
        return out

    def records(self):
        return [r for e in self.events() for r in e["Records"]]

    def wait(self, count, n, timeout=30):
        """Waits until `count()` has `n` items (returns them), or the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(count()) >= n:
                break
            self.callback_server.wait_for(lambda b: False, timeout=0.2)
        return count()

    def wait_records(self, n, timeout=30):
        return self.wait(self.records, n, timeout)

    def wait_events(self, n, timeout=30):
        return self.wait(self.events, n, timeout)
