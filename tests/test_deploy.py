"""`flint deploy` end to end: the `target/debug/flint deploy` binary against the suite's
`flint serve`, as a SAM or CDK user runs it. A SAM template (Globals, two Python functions from
directories, a layer, !Ref/!Sub environment, AutoPublishAlias, FunctionUrlConfig, an SQS event
polled from moto's queue, parameters) deploys and runs; a re-deploy with edited code updates in
place (a new version behind the alias, the other function untouched); a resource removed from
the template is deleted; a CloudFormation JSON template with inline `Code.ZipFile` and a
cdk.out-shaped template with a local asset deploy too; bad templates fail with the resource or
parameter named and a nonzero exit."""

import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from conftest import DEFAULT_ACCOUNT, REGION, unique_name


def deploy(flint_bin, server, template: Path, stack: str, *params: str, check=True,
           extra=()):
    """Runs `flint deploy`; returns (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="AKIDFLINTTEST", AWS_SECRET_ACCESS_KEY="flint-test-secret",
               AWS_REGION=REGION, AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    args = [str(flint_bin), "deploy", "--template", str(template), "--stack-name", stack,
            "--endpoint-url", server.endpoint, *extra]
    if params:
        args += ["--parameter-overrides", *params]
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert p.returncode == 0, f"flint deploy failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.returncode, p.stdout, p.stderr


def lines_for(stdout: str, logical: str):
    """The progress lines of one logical id: [(status, rest)]."""
    out = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == logical:
            out.append((parts[0], line))
    return out


def outputs(stdout: str) -> dict:
    _, _, tail = stdout.partition("\nOutputs:\n")
    return dict(line.split(" = ", 1) for line in tail.splitlines() if " = " in line)


def invoke(client, name, event=None, **kw):
    r = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kw)
    body = json.loads(r["Payload"].read())
    assert "FunctionError" not in r, body
    return body


SAM_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Description: flint deploy test application

Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  QueueArn:
    Type: String
  CallbackUrl:
    Type: String

Conditions:
  IsProd: !Equals [!Ref Stage, prod]

Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    MemorySize: 256
    Environment:
      Variables:
        STAGE: !Ref Stage

Resources:
  Deps:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: !Sub '${AWS::StackName}-deps'
      ContentUri: layer/
      CompatibleRuntimes: [python3.11]

  Hello:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello/
      Handler: app.handler
      Layers: [!Ref Deps]
      AutoPublishAlias: live
      FunctionUrlConfig:
        AuthType: NONE
      Environment:
        Variables:
          GREETING: !Sub 'hello from ${AWS::StackName} in ${AWS::Region}'
          WORKER: !Ref Worker
          MODE: !If [IsProd, production, development]

  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker/
      Handler: app.handler
      Environment:
        Variables:
          CALLBACK_URL: !Ref CallbackUrl
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !Ref QueueArn
            BatchSize: 1
        Nightly:
          Type: Schedule
          Properties:
            Schedule: rate(1 day)
      DeploymentPreference:
        Type: AllAtOnce

  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub '${AWS::StackName}-table'

Outputs:
  HelloUrl:
    Description: the function URL of Hello's live alias
    Value: !GetAtt HelloUrl.FunctionUrl
  HelloName:
    Value: !Ref Hello
  HelloAlias:
    Value: !Ref Hello.Alias
  WorkerArn:
    Value: !GetAtt Worker.Arn
  TableArn:
    Value: !GetAtt Table.Arn
"""

HELLO = """\
import json, os
import greet


def handler(event, context):
    return {"greeting": os.environ["GREETING"], "stage": os.environ["STAGE"],
            "mode": os.environ["MODE"], "worker": os.environ["WORKER"],
            "layer": greet.who(), "code": "v1", "version": context.function_version}
"""

WORKER = """\
import json, os, urllib.request


def handler(event, context):
    for record in event["Records"]:
        req = urllib.request.Request(os.environ["CALLBACK_URL"],
                                     data=record["body"].encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()
    return {"ok": len(event["Records"])}
"""


@pytest.fixture
def sam_app(tmp_path, aws_services, callback_server):
    """A SAM application directory, its queue in moto, and the parameters it deploys with."""
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "app.py").write_text(HELLO)
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "app.py").write_text(WORKER)
    (tmp_path / "layer" / "python").mkdir(parents=True)
    (tmp_path / "layer" / "python" / "greet.py").write_text("def who():\n    return 'layer'\n")
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE)
    sqs = aws_services.client("sqs")
    queue = unique_name("deploy-jobs")
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT}:{queue}"
    params = ("Stage=prod", f"QueueArn={arn}", f"CallbackUrl={callback_server.url}")
    return tmp_path, params, sqs, url


def test_a_sam_application_deploys_runs_updates_in_place_and_loses_what_is_removed(
        flint_bin, server, lambda_client, sam_app, callback_server):
    app, params, sqs, queue_url = sam_app
    stack = unique_name("samapp")
    _, out, err = deploy(flint_bin, server, app / "template.yaml", stack, *params)

    # Progress: every resource, CloudFormation's statuses; skipped things say why.
    for logical, kind in [("Deps", "AWS::Lambda::LayerVersion"), ("Hello", "AWS::Lambda::Function"),
                          ("HelloVersion", "AWS::Lambda::Version"),
                          ("HelloAliaslive", "AWS::Lambda::Alias"), ("HelloUrl", "AWS::Lambda::Url"),
                          ("HelloUrlPublicPermissions", "AWS::Lambda::Permission"),
                          ("Worker", "AWS::Lambda::Function"),
                          ("WorkerJobs", "AWS::Lambda::EventSourceMapping")]:
        statuses = [s for s, _ in lines_for(out, logical)]
        assert statuses == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"], (logical, out)
        assert kind in lines_for(out, logical)[-1][1]
    assert [s for s, _ in lines_for(out, "Table")] == ["SKIPPED"]
    assert [s for s, _ in lines_for(out, "HelloRole")] == ["SKIPPED"]
    assert "Nightly (Type Schedule) skipped" in err
    assert "DeploymentPreference ignored" in err

    outs = outputs(out)
    hello = outs["HelloName"]
    assert hello.startswith(f"{stack}-Hello-")
    assert outs["TableArn"] == f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT}:table/{stack}-table"
    assert outs["HelloAlias"].endswith(f":function:{hello}:live")

    # The function as AWS's tools see it: Globals merged, layer attached, stack tags.
    fn = lambda_client.get_function(FunctionName=hello)
    conf = fn["Configuration"]
    assert conf["Runtime"] == "python3.11" and conf["MemorySize"] == 256 and conf["Timeout"] == 10
    assert [l["Arn"].rsplit(":", 2)[-2:] for l in conf["Layers"]] == [[f"{stack}-deps", "1"]]
    assert fn["Tags"]["aws:cloudformation:stack-name"] == stack
    assert fn["Tags"]["aws:cloudformation:logical-id"] == "Hello"

    body = invoke(lambda_client, hello, Qualifier="live")
    worker = outs["WorkerArn"].rsplit(":", 1)[-1]
    assert body == {"greeting": f"hello from {stack} in {REGION}", "stage": "prod",
                    "mode": "production", "worker": worker, "layer": "layer", "code": "v1",
                    "version": "1"}
    assert lambda_client.get_alias(FunctionName=hello, Name="live")["FunctionVersion"] == "1"

    # The public URL answers (SAM's permission for AuthType NONE was added).
    url = outs["HelloUrl"]
    url_id = url.split("//", 1)[1].split(".", 1)[0]
    r = requests.get(f"{server.endpoint}/_flint/url/{url_id}/", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "1"

    # The SQS event: a message on moto's queue runs Worker.
    token = str(uuid.uuid4())
    sqs.send_message(QueueUrl=queue_url, MessageBody=token)
    assert callback_server.wait_for(lambda b: b == token, timeout=30), "Worker never ran"

    # Unchanged: nothing is sent again.
    _, out, _ = deploy(flint_bin, server, app / "template.yaml", stack, *params)
    for logical in ["Deps", "Hello", "HelloVersion", "HelloAliaslive", "HelloUrl",
                    "HelloUrlPublicPermissions", "Worker", "WorkerJobs"]:
        assert lines_for(out, logical)[-1][1].endswith("(no changes)"), (logical, out)
    assert len(lambda_client.list_versions_by_function(FunctionName=hello)["Versions"]) == 2

    # Edited code: updated in place, a new version behind the alias; Worker untouched.
    (app / "hello" / "app.py").write_text(HELLO.replace('"v1"', '"v2"'))
    _, out, _ = deploy(flint_bin, server, app / "template.yaml", stack, *params)
    assert [s for s, _ in lines_for(out, "Hello")] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    assert not lines_for(out, "Hello")[-1][1].endswith("(no changes)")
    assert lines_for(out, "Worker")[-1][1].endswith("(no changes)")
    assert outputs(out)["HelloName"] == hello
    body = invoke(lambda_client, hello, Qualifier="live")
    assert (body["code"], body["version"]) == ("v2", "2")
    assert lambda_client.get_alias(FunctionName=hello, Name="live")["FunctionVersion"] == "2"

    # Worker (and its mapping) removed from the template: deleted.
    mappings = lambda_client.list_event_source_mappings(FunctionName=worker)["EventSourceMappings"]
    assert len(mappings) == 1
    template = SAM_TEMPLATE
    start = template.index("  Worker:\n")
    end = template.index("  Table:\n")
    template = template[:start] + template[end:]
    template = template.replace("          WORKER: !Ref Worker\n", "          WORKER: none\n")
    template = template.replace("  WorkerArn:\n    Value: !GetAtt Worker.Arn\n", "")
    (app / "template.yaml").write_text(template)
    _, out, _ = deploy(flint_bin, server, app / "template.yaml", stack, *params)
    assert [s for s, _ in lines_for(out, "Worker")] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lambda_client.get_function(FunctionName=worker)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError):
        lambda_client.get_event_source_mapping(UUID=mappings[0]["UUID"])
    assert invoke(lambda_client, hello, Qualifier="live")["worker"] == "none"


CFN_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"Greeting": {"Type": "String"}},
    "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Inline": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.11",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": {"Fn::Join": ["\n", [
                    "import os",
                    "def handler(event, context):",
                    "    return {'greeting': os.environ['GREETING'],"
                    " 'name': context.function_name}",
                ]]}},
                "Environment": {"Variables": {"GREETING": {"Ref": "Greeting"}}},
                "RecursiveLoop": "Allow",
                "RuntimeManagementConfig": {"UpdateRuntimeOn": "FunctionUpdate"},
            },
        },
        "InlineVersion": {"Type": "AWS::Lambda::Version",
                          "Properties": {"FunctionName": {"Ref": "Inline"}}},
        "InlineAlias": {"Type": "AWS::Lambda::Alias",
                        "Properties": {"FunctionName": {"Ref": "Inline"}, "Name": "prod",
                                       "FunctionVersion": {"Fn::GetAtt": ["InlineVersion",
                                                                          "Version"]}}},
        "InlinePermission": {"Type": "AWS::Lambda::Permission",
                             "Properties": {"FunctionName": {"Ref": "InlineAlias"},
                                            "Action": "lambda:InvokeFunction",
                                            "Principal": "s3.amazonaws.com",
                                            "SourceAccount": {"Ref": "AWS::AccountId"}}},
        "InlineEvents": {"Type": "AWS::Lambda::EventInvokeConfig",
                         "Properties": {"FunctionName": {"Ref": "Inline"}, "Qualifier": "$LATEST",
                                        "MaximumRetryAttempts": 0}},
    },
    "Outputs": {"Alias": {"Value": {"Ref": "InlineAlias"}}},
}


def test_a_cloudformation_json_template_with_inline_code_deploys(
        flint_bin, server, lambda_client, tmp_path):
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(CFN_TEMPLATE))
    stack = unique_name("cfn")
    _, out, _ = deploy(flint_bin, server, path, stack, "Greeting=hi")
    assert [s for s, _ in lines_for(out, "Role")] == ["SKIPPED"]
    alias_arn = outputs(out)["Alias"]
    name = alias_arn.split(":")[6]
    assert name.startswith(f"{stack}-Inline-")
    assert invoke(lambda_client, name, Qualifier="prod") == {"greeting": "hi", "name": name}
    conf = lambda_client.get_function_configuration(FunctionName=name)
    assert conf["Role"].startswith(f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/{stack}-Role-")
    policy = json.loads(lambda_client.get_policy(FunctionName=name, Qualifier="prod")["Policy"])
    assert [s["Principal"] for s in policy["Statement"]] == [{"Service": "s3.amazonaws.com"}]
    eic = lambda_client.get_function_event_invoke_config(FunctionName=name)
    assert eic["MaximumRetryAttempts"] == 0
    # Settings with operations of their own.
    assert lambda_client.get_function_recursion_config(FunctionName=name)["RecursiveLoop"] == \
        "Allow"
    assert lambda_client.get_runtime_management_config(FunctionName=name)["UpdateRuntimeOn"] == \
        "FunctionUpdate"

    # A changed parameter changes only the configuration; the permission removed is removed.
    del CFN_TEMPLATE["Resources"]["InlinePermission"]
    path.write_text(json.dumps(CFN_TEMPLATE))
    _, out, _ = deploy(flint_bin, server, path, stack, "Greeting=hello")
    assert [s for s, _ in lines_for(out, "Inline")][-1] == "UPDATE_COMPLETE"
    assert "AWS::Lambda::Permission" in out and "DELETE_COMPLETE" in out
    assert invoke(lambda_client, name, Qualifier="prod") == {"greeting": "hello", "name": name}
    with pytest.raises(botocore.exceptions.ClientError):
        lambda_client.get_policy(FunctionName=name, Qualifier="prod")


def test_a_cdk_synth_template_deploys_its_local_asset(flint_bin, server, lambda_client, tmp_path):
    out_dir = tmp_path / "cdk.out"
    asset = out_dir / "asset.5f1e0c3b"
    asset.mkdir(parents=True)
    (asset / "index.js").write_text(
        "const fs = require('fs');\n"
        "exports.handler = async (event) => ({ from: 'cdk', echo: event.x,\n"
        "  layer: fs.readFileSync('/opt/layer.txt', 'utf8') });\n")
    layer_asset = out_dir / "asset.9a8b7c6d"
    layer_asset.mkdir()
    (layer_asset / "layer.txt").write_text("from the layer")
    template = {
        "Resources": {
            "HandlerServiceRoleFCDC14AE": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Handler886CB40B": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Code": {"S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}"
                                                      "-${AWS::Region}"},
                             "S3Key": "5f1e0c3b.zip"},
                    "Role": {"Fn::GetAtt": ["HandlerServiceRoleFCDC14AE", "Arn"]},
                    "Handler": "index.handler",
                    "Runtime": "nodejs20.x",
                    "Layers": [{"Ref": "SharedLayer1234ABCD"}],
                },
                "DependsOn": ["HandlerServiceRoleFCDC14AE"],
                "Metadata": {"aws:cdk:path": "App/Handler/Resource",
                             "aws:asset:path": "asset.5f1e0c3b",
                             "aws:asset:is-bundled": False,
                             "aws:asset:property": "Code"},
            },
            "SharedLayer1234ABCD": {
                "Type": "AWS::Lambda::LayerVersion",
                "Properties": {"Content": {"S3Bucket": "cdk-bucket", "S3Key": "9a8b7c6d.zip"},
                               "CompatibleRuntimes": ["nodejs20.x"]},
                "Metadata": {"aws:asset:path": "asset.9a8b7c6d",
                             "aws:asset:property": "Content"},
            },
            "SharedLayerShare": {
                "Type": "AWS::Lambda::LayerVersionPermission",
                "Properties": {"Action": "lambda:GetLayerVersion",
                               "LayerVersionArn": {"Ref": "SharedLayer1234ABCD"},
                               "Principal": "111122223333"},
            },
            "CDKMetadata": {"Type": "AWS::CDK::Metadata",
                            "Properties": {"Analytics": "v2:deflate64:abc"},
                            "Condition": "CDKMetadataAvailable"},
        },
        "Conditions": {"CDKMetadataAvailable": {"Fn::Or": [
            {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]},
            {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]}]}},
        "Parameters": {"BootstrapVersion": {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/cdk-bootstrap/hnb659fds/version"}},
        "Outputs": {"FunctionName": {"Value": {"Ref": "Handler886CB40B"}}},
    }
    path = out_dir / "App.template.json"
    path.write_text(json.dumps(template, indent=1))
    stack = unique_name("cdkapp")
    _, out, _ = deploy(flint_bin, server, path, stack)
    name = outputs(out)["FunctionName"]
    assert invoke(lambda_client, name, {"x": 7}) == {"from": "cdk", "echo": 7,
                                                     "layer": "from the layer"}
    assert [s for s, _ in lines_for(out, "CDKMetadata")] == ["SKIPPED"]
    layer_arn = lambda_client.get_function_configuration(FunctionName=name)["Layers"][0]["Arn"]
    layer_name, version = layer_arn.split(":")[6:8]
    assert layer_name.startswith(f"{stack}-SharedLayer1234ABCD-")
    policy = json.loads(lambda_client.get_layer_version_policy(
        LayerName=layer_name, VersionNumber=int(version))["Policy"])
    assert [s["Principal"] for s in policy["Statement"]] == [
        {"AWS": "arn:aws:iam::111122223333:root"}]

    # Deployed again unchanged: nothing is sent.
    _, out, _ = deploy(flint_bin, server, path, stack)
    for logical in ["SharedLayer1234ABCD", "SharedLayerShare", "Handler886CB40B"]:
        assert lines_for(out, logical)[-1][1].endswith("(no changes)"), (logical, out)


def test_bad_templates_fail_with_the_parameter_or_resource_named(flint_bin, server, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text("def handler(e, c):\n    return 1\n")
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Needed:
            Type: String
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: code/
              Handler: app.handler
              Runtime: python3.11
              Environment:
                Variables:
                  X: !ImportValue shared-thing
        """))
    stack = unique_name("bad")
    code, _, err = deploy(flint_bin, server, path, stack, check=False)
    assert code != 0 and "[Needed] must have values" in err, err
    code, out, err = deploy(flint_bin, server, path, stack, "Needed=1", check=False)
    assert code != 0
    assert "Fn: " in err and "Fn::ImportValue is not supported" in err, err
    assert "CREATE_FAILED" in out

    path.write_text(path.read_text().replace("!ImportValue shared-thing", "!Ref Needed")
                    .replace("Runtime: python3.11", "Runtime: python3.11\n      Timeout: 9999"))
    code, out, err = deploy(flint_bin, server, path, stack, "Needed=1", check=False)
    assert code != 0 and "Fn: Lambda API CreateFunction" in err, err


def test_create_other_resources_makes_the_templates_queue_at_the_aws_endpoint(
        flint_bin, server, lambda_client, aws_services, callback_server, tmp_path):
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "app.py").write_text(WORKER)
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          CallbackUrl:
            Type: String
        Resources:
          Jobs:
            Type: AWS::SQS::Queue
            Properties:
              VisibilityTimeout: 30
          Worker:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: worker/
              Handler: app.handler
              Runtime: python3.11
              Environment:
                Variables:
                  CALLBACK_URL: !Ref CallbackUrl
              Events:
                Jobs:
                  Type: SQS
                  Properties:
                    Queue: !GetAtt Jobs.Arn
        Outputs:
          QueueUrl:
            Value: !Ref Jobs
        """))
    stack = unique_name("other")
    extra = ("--create-other-resources", "--aws-endpoint-url", aws_services.endpoint)
    _, out, _ = deploy(flint_bin, server, path, stack, f"CallbackUrl={callback_server.url}",
                       extra=extra)
    assert [s for s, _ in lines_for(out, "Jobs")] == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    queue_url = outputs(out)["QueueUrl"]
    assert f"/{stack}-Jobs-" in queue_url
    sqs = aws_services.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "30"
    token = str(uuid.uuid4())
    sqs.send_message(QueueUrl=queue_url, MessageBody=token)
    assert callback_server.wait_for(lambda b: b == token, timeout=30), "Worker never ran"

    # Again: the queue is there already and is used as it is.
    _, out, _ = deploy(flint_bin, server, path, stack, f"CallbackUrl={callback_server.url}",
                       extra=extra)
    assert outputs(out)["QueueUrl"] == queue_url
    assert lines_for(out, "WorkerJobs")[-1][1].endswith("(no changes)")


def wait_for_log(server, start: int, text: str, timeout: float = 15) -> None:
    """Waits until the server's log, from byte `start` on, contains `text`."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        with open(server.log_path, "rb") as f:
            f.seek(start)
            if text.encode() in f.read():
                return
        assert time.monotonic() < deadline, f"no {text!r} in the server log after {timeout}s"
        time.sleep(0.02)


def test_hot_reload_deploys_mount_the_code_directory(flint_bin, server, lambda_client, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("def handler(event, context):\n    return 'one'\n")
    # The functions do not run as root: the mounted directory must be readable by others.
    os.chmod(src, 0o755)
    os.chmod(src / "app.py", 0o644)
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Dev:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.11
        Outputs:
          Name:
            Value: !Ref Dev
        """))
    stack = unique_name("hot")
    _, out, _ = deploy(flint_bin, server, path, stack, extra=("--hot-reload",))
    name = outputs(out)["Name"]
    assert invoke(lambda_client, name) == "one"
    directory = os.path.realpath(src)
    assert lambda_client.get_function(FunctionName=name)["Code"]["Location"] == \
        f"file://{directory}"

    start = server.log_size()
    (src / "app.py").write_text("def handler(event, context):\n    return 'two'\n")
    wait_for_log(server, start, f"hot reload: {directory} changed")
    assert invoke(lambda_client, name) == "two"

    _, out, _ = deploy(flint_bin, server, path, stack, extra=("--hot-reload",))
    assert lines_for(out, "Dev")[-1][1].endswith("(no changes)")
    # Without --hot-reload the directory is zipped again: the code is replaced by a copy.
    _, out, _ = deploy(flint_bin, server, path, stack)
    assert [s for s, _ in lines_for(out, "Dev")] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    assert not lines_for(out, "Dev")[-1][1].endswith("(no changes)")
    assert lambda_client.get_function(FunctionName=name)["Code"]["Location"].startswith("http")


def test_flint_deploy_help_explains_it(flint_bin):
    assert "deploy" in subprocess.run([str(flint_bin), "--help"], capture_output=True,
                                      text=True, check=True).stdout
    out = subprocess.run([str(flint_bin), "deploy", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for text in ("AWS::Serverless::Function", "--stack-name", "--parameter-overrides",
                 "http://127.0.0.1:9000", "SKIPPED", "--create-other-resources", "--hot-reload",
                 "--no-delete", "Fn::ImportValue is refused"):
        assert text in out, text
