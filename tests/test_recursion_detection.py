"""Recursive loop detection as AWS Lambda does it: an invocation carries the caller's X-Ray trace
header (`X-Amzn-Trace-Id`) into the function (`_X_AMZN_TRACE_ID`, which the AWS SDKs inside the
function pass on), with the function's count in its `Lineage` raised by one. A chain of events
that invokes a function more than 16 times is stopped: a synchronous Invoke answers
RecursiveInvocationException (400); an Event invoke is accepted and its event goes to the
dead-letter queue instead of running. `PutFunctionRecursionConfig(RecursiveLoop=Allow)` lets the
loop run."""

import json
import uuid

import botocore.exceptions
import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    client_error,
    create_function,
    make_zip,
    unique_name,
)

TRACE_ECHO = '''
import json, os, urllib.request


def handler(event, context):
    if "url" in event:
        body = {"token": event["token"]}
        req = urllib.request.Request(event["url"], data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()
    return {"trace": os.environ.get("_X_AMZN_TRACE_ID", "")}
'''

ROOT = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=0"
LOOP_MESSAGE = ("Lambda has detected your function being invoked in a recursive loop with other "
                "AWS resources and stopped your function's invocation.")


def arn(name):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


def lineage_key(function_arn):
    """Flint's key for a function in `Lineage`: FNV-1a (32 bits) of its unqualified ARN."""
    h = 0x811C9DC5
    for b in function_arn.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def traced(client, trace):
    """The client sends `trace` as X-Amzn-Trace-Id on every call, as an AWS SDK inside a
    function does."""
    def add_header(request, **_):
        request.headers["X-Amzn-Trace-Id"] = trace
    client.meta.events.register("before-sign.lambda.*", add_header)
    return client


@pytest.fixture
def echo(lambda_client):
    name = unique_name("loop")
    create_function(lambda_client, name, zip_bytes=make_zip({"index.py": TRACE_ECHO}))
    return name


def test_the_function_gets_the_callers_trace_with_its_lineage(make_client, echo):
    client = traced(make_client(), ROOT)
    resp = client.invoke(FunctionName=echo, Payload=b"{}")
    trace = json.loads(resp["Payload"].read())["trace"]
    assert trace == f"{ROOT};Lineage={lineage_key(arn(echo))}:1"
    # The next hop of the chain raises the count.
    client = traced(make_client(), trace)
    resp = client.invoke(FunctionName=echo, Payload=b"{}")
    assert json.loads(resp["Payload"].read())["trace"].endswith(
        f"Lineage={lineage_key(arn(echo))}:2")


def test_an_invoke_without_a_trace_gets_a_fresh_one(lambda_client, echo):
    resp = lambda_client.invoke(FunctionName=echo, Payload=b"{}")
    trace = json.loads(resp["Payload"].read())["trace"]
    assert trace.startswith("Root=1-")
    assert trace.endswith(f"Lineage={lineage_key(arn(echo))}:1")


def test_the_seventeenth_invocation_of_a_chain_is_refused(make_client, lambda_client, echo):
    at_limit = f"{ROOT};Lineage={lineage_key(arn(echo))}:16"
    client = traced(make_client(), at_limit)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.invoke(FunctionName=echo, Payload=b"{}")
    err = client_error(e)
    assert (err["status"], err["code"], err["message"]) == (
        400, "RecursiveInvocationException", LOOP_MESSAGE)
    # Another function's count does not matter.
    other = f"{ROOT};Lineage={lineage_key(arn('someone-else'))}:16"
    resp = traced(make_client(), other).invoke(FunctionName=echo, Payload=b"{}")
    assert "FunctionError" not in resp
    # Allow lets the loop run.
    lambda_client.put_function_recursion_config(FunctionName=echo, RecursiveLoop="Allow")
    resp = client.invoke(FunctionName=echo, Payload=b"{}")
    assert json.loads(resp["Payload"].read())["trace"].endswith(
        f"Lineage={lineage_key(arn(echo))}:17")


def test_an_async_event_in_a_loop_goes_to_the_dead_letter_queue(make_client, lambda_client,
                                                                  aws_services, callback_server):
    sqs = aws_services.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("loopdlq"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    name = unique_name("loopasync")
    create_function(lambda_client, name, zip_bytes=make_zip({"index.py": TRACE_ECHO}),
                    DeadLetterConfig={"TargetArn": queue_arn})
    token = uuid.uuid4().hex
    event = {"url": callback_server.url, "token": token}
    client = traced(make_client(), f"{ROOT};Lineage={lineage_key(arn(name))}:16")
    resp = client.invoke(FunctionName=name, InvocationType="Event",
                         Payload=json.dumps(event).encode())
    assert resp["StatusCode"] == 202
    rid = resp["ResponseMetadata"]["RequestId"]
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20, MaxNumberOfMessages=1,
                              MessageAttributeNames=["All"], AttributeNames=["All"])
    messages = got.get("Messages", [])
    assert messages, "nothing on the dead-letter queue"
    message = messages[0]
    assert json.loads(message["Body"]) == event
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"RequestID": rid, "ErrorCode": "400", "ErrorMessage": LOOP_MESSAGE}
    # The message carries the chain on, so a poller of that queue would keep counting.
    assert "Lineage=" in message["Attributes"].get("AWSTraceHeader", "Lineage=")
    # The function never ran.
    assert not any(token in b for b in list(callback_server.received))
