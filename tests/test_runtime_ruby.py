"""The Ruby managed runtimes (ruby3.2, ruby3.3, ruby3.4) run handlers as AWS's Ruby runtime
(aws_lambda_ric) does: `file.method` and `file.Module::Class.method` handlers called with
`event:` and `context:`, the context object's attributes, JSON in and out, errors as
`Function<RuntimeError>` / `Init<LoadError>` payloads (recorded shape: errorMessage, errorType,
stackTrace), Lambda's GEM_PATH/RUBYLIB, and layers' /opt/ruby/lib. This host's Ruby (Debian's
3.1) stands in, which the function's log says after INIT_START."""

import base64
import json
import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    create_function,
    invoke_json,
    make_zip,
    request_id,
    unique_name,
    wait_active,
)

pytestmark = pytest.mark.skipif(shutil.which("ruby") is None, reason="needs ruby (apt install ruby)")

RUBY_RUNTIMES = ["ruby3.2", "ruby3.3", "ruby3.4"]

FUNCTION_RB = """\
require 'json'
require 'greeting' if File.exist?('/opt/ruby/lib/greeting.rb')

$count = 0

def handler(event:, context:)
  $count += 1
  case event['action']
  when 'context'
    {
      'aws_request_id' => context.aws_request_id,
      'function_name' => context.function_name,
      'function_version' => context.function_version,
      'memory_limit_in_mb' => context.memory_limit_in_mb,
      'invoked_function_arn' => context.invoked_function_arn,
      'log_group_name' => context.log_group_name,
      'log_stream_name' => context.log_stream_name,
      'remaining' => context.get_remaining_time_in_millis,
      'identity' => context.identity,
      'client_context' => context.client_context,
      'deadline_ms' => context.deadline_ms,
      'class' => context.class.name,
    }
  when 'env'
    ENV.to_h.merge('cwd' => Dir.pwd, 'ruby' => RUBY_VERSION)
  when 'error'
    raise event['message']
  when 'custom_error'
    raise ArgumentError, 'bad argument'
  when 'missing_method'
    nil.undefined_method_here
  when 'log'
    puts "ruby says #{event['text']}"
    $stderr.puts 'ruby on stderr'
    'logged'
  when 'greeting'
    Greeting.hello
  when 'string'
    'just a string'
  when 'nil'
    nil
  else
    { 'event' => event, 'count' => $count }
  end
end
"""

CLASS_RB = """\
module Outer
  class Greeter
    def self.greet(event:, context:)
      { 'greeted' => event['name'], 'request' => context.aws_request_id }
    end
  end
end
"""


def arn(name):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


def ruby_zip(extra=None):
    files = {"function.rb": FUNCTION_RB, "lib/outer.rb": CLASS_RB}
    files.update(extra or {})
    return make_zip(files)


def log_tail(resp):
    return base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def ruby_functions(lambda_client):
    names = {}
    for runtime in RUBY_RUNTIMES:
        names[runtime] = unique_name(runtime.replace(".", ""))
        create_function(lambda_client, names[runtime], runtime=runtime,
                        handler="function.handler", zip_bytes=ruby_zip(), wait=False)
    return names


@pytest.mark.parametrize("runtime", RUBY_RUNTIMES)
def test_ruby_handler_gets_the_event_and_the_context(lambda_client, ruby_functions, runtime):
    name = ruby_functions[runtime]
    wait_active(lambda_client, name)
    event = {"runtime": runtime, "list": [1, 2.5, None, True], "nested": {"ü": "ß"}}
    resp, payload = invoke_json(lambda_client, name, event)
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload == {"event": event, "count": 1}

    resp, ctx = invoke_json(lambda_client, name, {"action": "context"},
                            ClientContext=base64.b64encode(
                                b'{"custom":{"k":"v"},"env":{"e":"1"}}').decode())
    assert ctx["class"] == "LambdaContext"
    assert ctx["aws_request_id"] == request_id(resp)
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == "128"  # a string, as recorded from AWS
    assert ctx["invoked_function_arn"] == arn(name)
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert re.match(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$", ctx["log_stream_name"])
    assert 0 < ctx["remaining"] <= 3000
    assert ctx["deadline_ms"] > 1_600_000_000_000
    assert ctx["client_context"] == {"custom": {"k": "v"}, "env": {"e": "1"}}
    assert ctx["identity"] is None

    # Warm: the top-level state survives to the next invoke.
    _, again = invoke_json(lambda_client, name, {"second": True})
    assert again == {"event": {"second": True}, "count": 3}

    _, env = invoke_json(lambda_client, name, {"action": "env"})
    abi = runtime.removeprefix("ruby") + ".0"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert env["_HANDLER"] == "function.handler"
    assert env["GEM_HOME"] == "/var/runtime"
    assert env["GEM_PATH"] == (f"/var/task/vendor/bundle/ruby/{abi}:/opt/ruby/gems/{abi}:"
                               f"/var/runtime:/var/runtime/ruby/{abi}")
    # Recorded from Lambda (test_introspection_invoke[ruby3.3]).
    assert env["RUBYLIB"] == ("/var/runtime/gems/aws_lambda_ric-3.1.3/lib:/var/task:"
                              "/var/runtime/lib:/opt/ruby/lib")
    assert env["PATH"] == "/var/lang/bin:/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
    assert env["LD_LIBRARY_PATH"] == ("/var/lang/lib:/var/lang/lib:/lib64:/usr/lib64:/var/runtime:"
                                      "/var/runtime/lib:/var/task:/var/task/lib:/opt/lib")
    assert env["PWD"] == "/var/task" and env["SHLVL"] == "0"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["cwd"] == "/var/task"


def test_ruby_results_are_json_as_aws_marshals_them(lambda_client, ruby_functions):
    name = ruby_functions["ruby3.3"]
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {"action": "string"})
    assert resp["RawPayload"] == b'"just a string"'
    resp, payload = invoke_json(lambda_client, name, {"action": "nil"})
    assert resp["RawPayload"] == b"null" and "FunctionError" not in resp


def test_ruby_class_method_handler_in_a_module(lambda_client):
    name = unique_name("ruby-class")
    create_function(lambda_client, name, runtime="ruby3.3", handler="lib/outer.Outer::Greeter.greet",
                    zip_bytes=ruby_zip())
    resp, payload = invoke_json(lambda_client, name, {"name": "flint"})
    assert "FunctionError" not in resp, payload
    assert payload == {"greeted": "flint", "request": request_id(resp)}


def test_ruby_error_payload_is_awss(lambda_client, ruby_functions):
    name = ruby_functions["ruby3.2"]
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name,
                                {"action": "error", "message": "Error: some_error_msg"},
                                LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    # Recorded (test_uncaught_exception_invoke[ruby3.3]): errorMessage, errorType, stackTrace.
    assert set(payload) == {"errorMessage", "errorType", "stackTrace"}
    assert payload["errorMessage"] == "Error: some_error_msg"
    assert payload["errorType"] == "Function<RuntimeError>"
    assert payload["stackTrace"], payload
    assert payload["stackTrace"][0].startswith("/var/task/function.rb:")
    assert "handler" in payload["stackTrace"][0]
    assert all("bootstrap.rb" not in frame for frame in payload["stackTrace"])
    assert "Error raised from handler method" in log_tail(resp)

    _, payload = invoke_json(lambda_client, name, {"action": "custom_error"})
    assert payload["errorType"] == "Function<ArgumentError>"
    assert payload["errorMessage"] == "bad argument"

    # The environment survives a handler's StandardError.
    _, payload = invoke_json(lambda_client, name, {"after": "error"})
    assert payload["event"] == {"after": "error"} and payload["count"] > 1


def test_ruby_no_method_error_is_reported_and_the_environment_serves_on(lambda_client):
    name = unique_name("ruby-nomethod")
    create_function(lambda_client, name, runtime="ruby3.3", handler="function.handler",
                    zip_bytes=ruby_zip())
    _, first = invoke_json(lambda_client, name, {})
    assert first["count"] == 1
    resp, payload = invoke_json(lambda_client, name, {"action": "missing_method"})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Function<NoMethodError>"
    assert "undefined_method_here" in payload["errorMessage"]
    _, payload = invoke_json(lambda_client, name, {})
    assert payload.get("count") == 3, payload


@pytest.mark.parametrize("handler,files,error_type,message", [
    ("missing.handler", {}, "Init<LoadError>", "cannot load such file -- /var/task/missing"),
    ("broken.handler", {"broken.rb": "def handler(event:, context:\n  1\n"},
     "Init<SyntaxError>", "broken.rb"),
    ("raises.handler", {"raises.rb": "raise 'init failed here'\n"},
     "Init<RuntimeError>", "init failed here"),
])
def test_ruby_init_errors_are_reported_as_awss(lambda_client, handler, files, error_type,
                                               message):
    name = unique_name("ruby-init")
    create_function(lambda_client, name, runtime="ruby3.3", handler=handler,
                    zip_bytes=ruby_zip(files))
    for _ in range(2):  # a failed init is attempted again at the next invoke
        resp, payload = invoke_json(lambda_client, name, {})
        assert resp["FunctionError"] == "Unhandled", payload
        assert payload["errorType"] == error_type
        assert message in payload["errorMessage"]
        assert isinstance(payload["stackTrace"], list)


def test_ruby_undefined_handler_method_fails_the_invoke(lambda_client):
    name = unique_name("ruby-nohandler")
    create_function(lambda_client, name, runtime="ruby3.3", handler="function.nope",
                    zip_bytes=ruby_zip())
    resp, payload = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Function<NoMethodError>"
    assert "nope" in payload["errorMessage"]


def test_ruby_logs_and_the_stand_in_warning(lambda_client, ruby_functions, flint_bin, server):
    name = ruby_functions["ruby3.4"]
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {"action": "log", "text": "hi"},
                                LogType="Tail")
    assert payload == "logged"
    tail = log_tail(resp)
    assert "ruby says hi" in tail
    assert "ruby on stderr" in tail
    _, env = invoke_json(lambda_client, name, {"action": "env"})
    if env["ruby"].startswith("3.4."):
        return  # an exact Ruby: no warning
    # INIT_START, then the warning naming the stand-in; lines reach the stream's file shortly
    # after the invoke returns.
    want = "WARNING Flint: this host has no interpreter for ruby3.4; Ruby "
    deadline = time.monotonic() + 15
    while True:
        text = subprocess.run([str(flint_bin), "logs", "--data-dir", str(server.data_dir), name],
                              capture_output=True, text=True).stdout
        if want in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    lines = text.splitlines()
    init = next(i for i, line in enumerate(lines) if "INIT_START" in line)
    assert want in lines[init + 1]


def test_ruby_layer_libraries_are_on_the_load_path(lambda_client):
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("ruby-layer"),
        Content={"ZipFile": make_zip({
            "ruby/lib/greeting.rb": "module Greeting\n  def self.hello\n"
                                    "    'hello from a ruby layer'\n  end\nend\n"})},
        CompatibleRuntimes=["ruby3.3"])
    name = unique_name("ruby-layered")
    create_function(lambda_client, name, runtime="ruby3.3", handler="function.handler",
                    zip_bytes=ruby_zip(), Layers=[layer["LayerVersionArn"]])
    resp, payload = invoke_json(lambda_client, name, {"action": "greeting"})
    assert "FunctionError" not in resp, payload
    assert payload == "hello from a ruby layer"


def test_flint_runtimes_lists_the_ruby_runtimes_and_their_interpreter(flint_bin):
    out = subprocess.run([str(flint_bin), "runtimes"], capture_output=True, text=True,
                         check=True).stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for runtime in RUBY_RUNTIMES:
        row = rows[runtime]
        assert re.search(r"/ruby\d+\.\d+\s", row), row
        if not row.split()[2].startswith(runtime.removeprefix("ruby")):
            assert "nearest version stands in" in row, row


LOGGER_RB = """\
require 'logger'

LOGGER = Logger.new($stdout)  # made at init, before any invocation

def handler(event:, context:)
  marker = event['marker']
  raise ArgumentError, "boom-#{marker}" if event['fail']

  LOGGER.debug("debug:#{marker}")
  LOGGER.info("info:#{marker}")
  Logger.new($stderr).warn("warn:#{marker}")
  Logger.new($stdout, progname: 'app').error("error:#{marker}")
  puts "puts:#{marker}"
  'ok'
end
"""


def json_records(log: str):
    """(JSON object records, plain lines) of a log."""
    records, plain = [], []
    for line in log.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            records.append(value)
        elif line.strip():
            plain.append(line)
    return records, plain


def test_ruby_json_log_format_writes_logger_records(lambda_client):
    """LoggingConfig.LogFormat JSON: a Logger of $stdout/$stderr writes one JSON object per record
    (timestamp, level, message, requestId) at ApplicationLogLevel (INFO by default: DEBUG is
    dropped); `puts` stays text; the handler's error is one record at ERROR."""
    name = unique_name("ruby-jsonlog")
    create_function(lambda_client, name, runtime="ruby3.3", handler="function.handler",
                    zip_bytes=make_zip({"function.rb": LOGGER_RB}),
                    LoggingConfig={"LogFormat": "JSON"})
    marker = uuid.uuid4().hex
    resp, payload = invoke_json(lambda_client, name, {"marker": marker}, LogType="Tail")
    assert payload == "ok"
    rid = request_id(resp)
    records, plain = json_records(log_tail(resp))
    app = {r["message"]: r for r in records if marker in str(r.get("message"))}
    assert set(app) == {f"info:{marker}", f"warn:{marker}", f"error:{marker}"}, records
    assert [app[f"{k}:{marker}"]["level"] for k in ("info", "warn", "error")] == \
        ["INFO", "WARN", "ERROR"]
    assert all(r["requestId"] == rid for r in app.values())
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
                    app[f"info:{marker}"]["timestamp"])
    assert app[f"error:{marker}"]["progname"] == "app"
    assert f"puts:{marker}" in plain

    resp, payload = invoke_json(lambda_client, name, {"marker": marker, "fail": True},
                                LogType="Tail")
    assert payload["errorType"] == "Function<ArgumentError>"
    records, _ = json_records(log_tail(resp))
    errors = [r for r in records if r.get("errorType") == "Function<ArgumentError>"]
    assert errors, records
    assert errors[0]["level"] == "ERROR"
    assert errors[0]["errorMessage"] == f"boom-{marker}"
    assert errors[0]["requestId"] == request_id(resp)


def test_ruby_application_log_level_filters_and_text_format_is_untouched(lambda_client):
    name = unique_name("ruby-loglevel")
    create_function(lambda_client, name, runtime="ruby3.3", handler="function.handler",
                    zip_bytes=make_zip({"function.rb": LOGGER_RB}),
                    LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    marker = uuid.uuid4().hex
    resp, _ = invoke_json(lambda_client, name, {"marker": marker}, LogType="Tail")
    records, _ = json_records(log_tail(resp))
    kept = sorted(r["message"] for r in records if marker in str(r.get("message")))
    assert kept == [f"error:{marker}", f"warn:{marker}"], records

    lambda_client.update_function_configuration(FunctionName=name,
                                                LoggingConfig={"LogFormat": "Text"})
    wait_active(lambda_client, name)
    resp, _ = invoke_json(lambda_client, name, {"marker": marker}, LogType="Tail")
    tail = log_tail(resp)
    records, _ = json_records(tail)
    assert not [r for r in records if marker in str(r.get("message"))], records
    assert f"DEBUG {request_id(resp)} -- : debug:{marker}" in tail  # the ric's line, every level


def test_ruby_text_format_logger_lines_carry_the_request_id_as_the_rics(lambda_client):
    """LogFormat Text: a Logger of $stdout/$stderr given no formatter writes aws_lambda_ric's
    `I, [time #pid]  INFO <request id> -- progname: message` line -- also one made at init,
    before the first invocation; `puts` stays as written."""
    name = unique_name("ruby-textlog")
    create_function(lambda_client, name, runtime="ruby3.3", handler="function.handler",
                    zip_bytes=make_zip({"function.rb": LOGGER_RB}))
    marker = uuid.uuid4().hex
    resp, payload = invoke_json(lambda_client, name, {"marker": marker}, LogType="Tail")
    assert payload == "ok"
    rid = request_id(resp)
    lines = {line.split(": ", 1)[-1]: line for line in log_tail(resp).splitlines()
             if marker in line}
    stamp = r"\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6} #\d+\]"
    expected = {f"debug:{marker}": rf"D, {stamp} DEBUG {rid} -- : debug:{marker}",
                f"info:{marker}": rf"I, {stamp}  INFO {rid} -- : info:{marker}",
                f"warn:{marker}": rf"W, {stamp}  WARN {rid} -- : warn:{marker}",
                f"error:{marker}": rf"E, {stamp} ERROR {rid} -- app: error:{marker}"}
    for message, pattern in expected.items():
        assert re.fullmatch(pattern, lines.get(message, "")), (message, lines)
    assert lines.get(f"puts:{marker}") == f"puts:{marker}", lines
