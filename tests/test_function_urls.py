"""Function URLs serving HTTP as AWS Lambda's do: the host form
(`http://<url-id>.lambda-url.<region>.localhost:<port>/`) and the path form
(`http://127.0.0.1:<port>/_flint/url/<url-id>/`), the payload format 2.0 event, response mapping
and inference, NONE and AWS_IAM auth decided by the resource policy, CORS, error statuses and
alias URLs. Plain HTTP clients (`requests`, curl); the AWS SDK only sets functions up and signs."""

import base64
import json
import re
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import REGION, create_function, make_zip, random_account, unique_name

HANDLER = make_zip({"index.py": (
    "import base64, json, os, time\n"
    "def handler(event, context):\n"
    "    path = event.get('rawPath', '')\n"
    "    if path == '/plain':\n"
    "        return {'hello': 'world'}\n"
    "    if path == '/trace':\n"
    "        return {'statusCode': 200, 'body': json.dumps({\n"
    "            'env': os.environ.get('_X_AMZN_TRACE_ID'),\n"
    "            'header': event['headers'].get('x-amzn-trace-id')})}\n"
    "    if path == '/value':\n"
    "        return json.loads(event['body'])\n"
    "    if path == '/error':\n"
    "        raise Exception('boom')\n"
    "    if path == '/sleep':\n"
    "        time.sleep(5)\n"
    "        return {}\n"
    "    if path == '/binary':\n"
    "        return {'statusCode': 200, 'headers': {'content-type': 'application/octet-stream'},\n"
    "                'body': base64.b64encode(b'\\x00\\x01\\xff').decode(), 'isBase64Encoded': True}\n"
    "    if path == '/cookies':\n"
    "        return {'statusCode': 202, 'cookies': ['a=1', 'b=2; Path=/'], 'body': 'ok'}\n"
    "    if path == '/cors':\n"
    "        return {'statusCode': 200, 'headers': {'access-control-allow-origin': 'https://x'},\n"
    "                'body': 'ok'}\n"
    "    if path == '/version':\n"
    "        return {'statusCode': 200, 'body': context.function_version + ' ' +\n"
    "                context.invoked_function_arn}\n"
    "    return {'statusCode': 201, 'headers': {'x-flint': 'yes'}, 'body': json.dumps(event)}\n")})

# A URL the resource policy does not open (recorded from AWS, test_lambda_permission_url_invocation),
# and the URL of a deleted alias (test_lambda_url_persists_after_alias_delete).
NOT_ALLOWED = {"Message": "Forbidden. For troubleshooting Function URL authorization issues, see: "
                          "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}


def fetch(server, url, path="", *, method="GET", data=None, headers=None, path_form=False,
          sign_as=None, **kwargs):
    """An HTTP request to a function URL. Python does not resolve `*.localhost`, so the request
    goes to 127.0.0.1 with the URL's Host header (the host form) — or, with `path_form`, to the
    path form. `sign_as`: an access key id to SigV4-sign with (service `lambda`)."""
    parts = urlsplit(url)
    host = parts.netloc
    url_id = host.split(".")[0]
    port = urlsplit(server.endpoint).port
    headers = dict(headers or {})
    if path_form:
        target = f"http://127.0.0.1:{port}/_flint/url/{url_id}/{path}"
    else:
        target = f"http://127.0.0.1:{port}/{path}"
        headers["Host"] = host
    if sign_as:
        signed = AWSRequest(method=method, url=f"http://{host}/{path}", data=data or b"",
                            headers={k: v for k, v in headers.items() if k != "Host"})
        SigV4Auth(Credentials(sign_as, "flint-test-secret"), "lambda", REGION).add_auth(signed)
        headers.update({k: v for k, v in signed.headers.items() if k.lower() != "host"})
    return requests.request(method, target, data=data, headers=headers, timeout=30, **kwargs)


def grant_public(client, name, qualifier=None):
    """The two statements AWS's guide asks of a public (AuthType NONE) URL (the first suffices)."""
    extra = {"Qualifier": qualifier} if qualifier else {}
    client.add_permission(FunctionName=name, StatementId="url", Principal="*",
                          Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="NONE", **extra)
    client.add_permission(FunctionName=name, StatementId="invoke", Principal="*",
                          Action="lambda:InvokeFunction", InvokedViaFunctionUrl=True, **extra)


@pytest.fixture(scope="module")
def public_url(lambda_client):
    name = unique_name("urlfn")
    create_function(lambda_client, name, zip_bytes=HANDLER, Timeout=1)
    url = lambda_client.create_function_url_config(
        FunctionName=name, AuthType="NONE",
        Cors={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"],
              "AllowHeaders": ["x-custom"], "ExposeHeaders": ["x-flint"], "MaxAge": 600,
              "AllowCredentials": True})["FunctionUrl"]
    grant_public(lambda_client, name)
    return name, url


def test_the_function_url_is_the_host_form_under_flints_port(server, public_url):
    _, url = public_url
    parts = urlsplit(url)
    assert parts.hostname.endswith(f".lambda-url.{REGION}.localhost"), url
    assert parts.port == urlsplit(server.endpoint).port
    assert parts.path == "/"


@pytest.mark.parametrize("path_form", [False, True])
def test_a_request_becomes_a_payload_format_2_0_event(server, public_url, path_form):
    _, url = public_url
    url_id = urlsplit(url).hostname.split(".")[0]
    resp = fetch(server, url, "some/path?q=1&q=2&x=a%20b", method="POST", data=b"hello",
                 path_form=path_form,
                 headers={"Content-Type": "text/plain", "X-Custom": "v",
                          "Cookie": "c1=v1; c2=v2", "User-Agent": "flint-test"})
    assert resp.status_code == 201, resp.text
    assert resp.headers["x-flint"] == "yes"
    event = resp.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "q=1&q=2&x=a%20b"
    assert event["queryStringParameters"] == {"q": "1,2", "x": "a b"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "v"
    assert event["headers"]["content-type"] == "text/plain"
    assert event["body"] == "hello" and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["accountId"] == "anonymous"
    assert ctx["apiId"] == url_id and ctx["domainPrefix"] == url_id
    assert ctx["domainName"] == f"{url_id}.lambda-url.{REGION}.localhost"
    assert ctx["http"] == {"method": "POST", "path": "/some/path", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "flint-test"}
    assert ctx["routeKey"] == "$default" and ctx["stage"] == "$default"
    assert ctx["requestId"] == resp.headers["x-amzn-RequestId"]
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 60
    assert "authorizer" not in ctx


def test_a_binary_body_arrives_base64_encoded(server, public_url):
    _, url = public_url
    resp = fetch(server, url, method="PUT", data=b"\x00\x01\xfe",
                 headers={"Content-Type": "application/octet-stream"})
    event = resp.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01\xfe"


def test_a_result_without_status_code_is_a_200_json_response(server, public_url):
    resp = fetch(server, public_url[1], "plain")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"hello": "world"}


def test_binary_bodies_and_cookies_map_to_http(server, public_url):
    resp = fetch(server, public_url[1], "binary")
    assert resp.status_code == 200 and resp.content == b"\x00\x01\xff"
    assert resp.headers["content-type"] == "application/octet-stream"
    resp = fetch(server, public_url[1], "cookies")
    assert resp.status_code == 202 and resp.text == "ok"
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2; Path=/"]


def test_function_errors_are_502_and_timeouts_504(server, public_url):
    resp = fetch(server, public_url[1], "error")
    assert resp.status_code == 502, resp.text
    assert resp.text == "Internal Server Error"
    resp = fetch(server, public_url[1], "sleep")
    assert resp.status_code == 504, resp.text


def test_a_request_body_over_6_mb_is_413(server, public_url):
    resp = fetch(server, public_url[1], method="POST", data=b"x" * (6 * 1024 * 1024 + 1),
                 headers={"Content-Type": "text/plain"})
    assert resp.status_code == 413
    assert "6291456" in resp.json()["Message"]


def test_an_unknown_url_is_forbidden(server, public_url):
    port = urlsplit(server.endpoint).port
    fake = f"http://{'z' * 32}.lambda-url.{REGION}.localhost:{port}/"
    resp = fetch(server, fake)
    assert (resp.status_code, resp.json()) == (403, NOT_ALLOWED)
    assert resp.headers["x-amzn-ErrorType"] == "AccessDeniedException"


def test_the_url_of_a_deleted_alias_is_forbidden_as_aws_answers_it(server, lambda_client):
    name = unique_name("urldelalias")
    create_function(lambda_client, name, zip_bytes=HANDLER)
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.create_alias(FunctionName=name, Name="gone", FunctionVersion=version)
    url = lambda_client.create_function_url_config(FunctionName=name, Qualifier="gone",
                                                   AuthType="NONE")["FunctionUrl"]
    grant_public(lambda_client, name, qualifier="gone")
    assert fetch(server, url, "plain").status_code == 200
    lambda_client.delete_alias(FunctionName=name, Name="gone")
    for _ in range(100):  # the URL's route goes with the change feed's next message
        resp = fetch(server, url, "plain")
        if resp.status_code != 200:
            break
        time.sleep(0.05)
    assert (resp.status_code, resp.json()) == (403, NOT_ALLOWED)
    assert resp.headers["x-amzn-ErrorType"] == "AccessDeniedException"


@pytest.mark.parametrize("returned, body", [
    ('{"hello": "world"}', b'{"hello":"world"}'),
    ('["hello", 3, true]', b'["hello",3,true]'),
    ('"hello"', b"hello"),
    ("3.1", b"3.1"),
    ("true", b"true"),
], ids=["dict", "list-mixed", "string", "float", "boolean"])
def test_a_value_without_status_code_is_the_body_as_aws_answers_it(server, public_url, returned,
                                                                    body):
    # Recorded (test_lambda_url_invocation[*]): compact JSON, a string as its text.
    resp = fetch(server, public_url[1], "value", method="POST", data=returned.encode(),
                 headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert (resp.content, resp.headers["Content-Length"]) == (body, str(len(body)))


def test_a_public_url_opens_with_the_invoke_function_url_grant_alone(server, lambda_client):
    # AWS's recordings (LocalStack's suite, November 2025): a NONE URL answers once the policy
    # grants `lambda:InvokeFunctionUrl` to `*`, without a `lambda:InvokeFunction` statement.
    name = unique_name("urlgrant")
    create_function(lambda_client, name, zip_bytes=HANDLER)
    url = lambda_client.create_function_url_config(FunctionName=name,
                                                   AuthType="NONE")["FunctionUrl"]
    resp = fetch(server, url, "plain")
    assert (resp.status_code, resp.json()) == (403, NOT_ALLOWED)
    assert resp.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    # `lambda:InvokeFunction` alone does not open it.
    lambda_client.add_permission(FunctionName=name, StatementId="invoke", Principal="*",
                                 Action="lambda:InvokeFunction", InvokedViaFunctionUrl=True)
    assert fetch(server, url, "plain").status_code == 403
    lambda_client.remove_permission(FunctionName=name, StatementId="invoke")
    lambda_client.add_permission(FunctionName=name, StatementId="url", Principal="*",
                                 Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="NONE")
    resp = fetch(server, url, "plain")
    assert resp.status_code == 200, resp.text
    # A grant for AWS_IAM URLs does not open a NONE URL.
    lambda_client.remove_permission(FunctionName=name, StatementId="url")
    lambda_client.add_permission(FunctionName=name, StatementId="iam", Principal="*",
                                 Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="AWS_IAM")
    assert fetch(server, url, "plain").status_code == 403


def test_an_aws_iam_url_admits_signed_callers_the_policy_allows(server, lambda_client,
                                                                 make_client):
    owner = random_account()
    other = random_account()
    client = make_client(owner)
    name = unique_name("urliam")
    create_function(client, name, zip_bytes=HANDLER)
    url = client.create_function_url_config(FunctionName=name,
                                            AuthType="AWS_IAM")["FunctionUrl"]
    # Unsigned: forbidden. Signed by the owner's account: allowed without any statement.
    assert fetch(server, url).status_code == 403
    resp = fetch(server, url, "x", sign_as=owner)
    assert resp.status_code == 201, resp.text
    iam = resp.json()["requestContext"]["authorizer"]["iam"]
    assert iam["accountId"] == owner and iam["accessKey"] == owner
    assert resp.json()["requestContext"]["accountId"] == owner
    # Another account: only once the policy grants it `lambda:InvokeFunctionUrl`.
    assert fetch(server, url, "x", sign_as=other).status_code == 403
    client.add_permission(FunctionName=name, StatementId="invoke", Principal=other,
                          Action="lambda:InvokeFunction")
    assert fetch(server, url, "x", sign_as=other).status_code == 403
    client.add_permission(FunctionName=name, StatementId="url", Principal=other,
                          Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="AWS_IAM")
    assert fetch(server, url, "x", sign_as=other).status_code == 201
    # A public NONE grant does not open an AWS_IAM URL to anonymous callers.
    assert fetch(server, url, "x").status_code == 403


def test_cors_preflight_is_answered_from_the_config(server, public_url):
    resp = fetch(server, public_url[1], "anything", method="OPTIONS",
                 headers={"Origin": "https://app.example",
                          "Access-Control-Request-Method": "POST",
                          "Access-Control-Request-Headers": "x-custom"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert resp.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert resp.headers["Access-Control-Allow-Headers"] == "x-custom"
    assert resp.headers["Access-Control-Max-Age"] == "600"
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    resp = fetch(server, public_url[1], "anything", method="OPTIONS",
                 headers={"Origin": "https://evil.example",
                          "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_headers_decorate_responses_to_allowed_origins(server, public_url):
    resp = fetch(server, public_url[1], "cors", headers={"Origin": "https://app.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert resp.headers["Access-Control-Expose-Headers"] == "x-flint"
    resp = fetch(server, public_url[1], "cors", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_an_alias_url_runs_the_alias_version(server, lambda_client):
    name = unique_name("urlalias")
    create_function(lambda_client, name, zip_bytes=HANDLER)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_configuration(FunctionName=name, Description="two")
    for _ in range(100):
        if lambda_client.get_function_configuration(
                FunctionName=name)["LastUpdateStatus"] == "Successful":
            break
        time.sleep(0.05)
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    url = lambda_client.create_function_url_config(FunctionName=name, Qualifier="live",
                                                   AuthType="NONE")["FunctionUrl"]
    grant_public(lambda_client, name, qualifier="live")
    resp = fetch(server, url, "version")
    assert resp.text == f"1 {lambda_client.get_function(FunctionName=name)['Configuration']['FunctionArn']}:live"
    lambda_client.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    assert fetch(server, url, "version").text.startswith("2 ")
    lambda_client.update_alias(FunctionName=name, Name="live", FunctionVersion="1",
                               RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    seen = {fetch(server, url, "version").text.split()[0] for _ in range(40)}
    assert seen == {"1", "2"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_opens_the_host_form_url_as_is(public_url):
    """curl resolves `*.localhost` to loopback itself, as browsers do: the URL works verbatim."""
    out = subprocess.run(["curl", "-sS", public_url[1] + "plain"], capture_output=True,
                         timeout=30, check=True)
    assert json.loads(out.stdout) == {"hello": "world"}


def test_the_trace_header_reaches_the_function_and_its_event(server, public_url):
    # Without one, a new trace: its root in the event's headers (as AWS's front end adds it)
    # and in the function's _X_AMZN_TRACE_ID.
    seen = fetch(server, public_url[1], "trace").json()
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", seen["header"]), seen
    assert seen["env"].startswith(seen["header"] + ";"), seen
    # The caller's header reaches both.
    root = "Root=1-5759e988-bd862e3fe1be46a994272793"
    seen = fetch(server, public_url[1], "trace",
                 headers={"X-Amzn-Trace-Id": f"{root};Sampled=0"}).json()
    assert seen["header"] == f"{root};Sampled=0"
    assert seen["env"].startswith(root + ";"), seen
