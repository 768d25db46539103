#!/usr/bin/env python3
"""An endless SQS queue for measuring Flint's SQS poller alone (scripts/sqs_bench.py --fake):
every ReceiveMessage answers at once with as many fresh messages as asked for, DeleteMessageBatch
counts what it deletes, GET /stats tells the count. Only the JSON protocol's calls the poller
makes (GetQueueUrl, GetQueueAttributes, ReceiveMessage, DeleteMessageBatch,
ChangeMessageVisibilityBatch); no signatures checked. Not SQS: a source that costs nothing.

Usage: python3 scripts/fake_sqs.py PORT
"""

import hashlib
import http.server
import itertools
import json
import sys
import threading
import time

BODY = "x" * 100
MD5 = hashlib.md5(BODY.encode()).hexdigest()
counter = itertools.count()
deleted = 0
lock = threading.Lock()


def message():
    n = next(counter)
    now = str(int(time.time() * 1000))
    return {"MessageId": f"00000000-0000-4000-8000-{n:012d}", "ReceiptHandle": f"rh-{n}",
            "MD5OfBody": MD5, "Body": BODY,
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now,
                           "SenderId": "AIDAFAKE", "ApproximateFirstReceiveTimestamp": now}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm and the client's
    # delayed ACK hold every answer back ~40 ms.
    disable_nagle_algorithm = True

    def reply(self, doc, status=200):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        with lock:
            self.reply({"deleted": deleted})

    def do_POST(self):  # noqa: N802
        global deleted
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        action = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        if action == "GetQueueUrl":
            self.reply({"QueueUrl": f"http://{self.headers['Host']}/000000000000/"
                                    f"{body.get('QueueName')}"})
        elif action == "GetQueueAttributes":
            self.reply({"Attributes": {"VisibilityTimeout": "30"}})
        elif action == "ReceiveMessage":
            n = int(body.get("MaxNumberOfMessages", 1))
            self.reply({"Messages": [message() for _ in range(n)]})
        elif action in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            entries = body.get("Entries", [])
            if action == "DeleteMessageBatch":
                with lock:
                    deleted += len(entries)
            self.reply({"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []})
        else:
            self.reply({"__type": "InvalidAction", "message": action}, 400)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
