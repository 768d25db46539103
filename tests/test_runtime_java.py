"""The Java managed runtimes (java8.al2, java11, java17, java21, java25) run handlers as AWS's Java
runtime does: `pkg.Class::method` or `pkg.Class` (RequestHandler / RequestStreamHandler), the
Context object, POJO/Map/List/String (de)serialisation, errors as {errorMessage, errorType:
exception class, stackTrace: [...]} (recorded shape), init errors, classes in /var/task and jars in
lib/ and layers' java/lib. The functions are compiled here with javac and jar, against a copy of
aws-lambda-java-core's interfaces the jar bundles, as users' jars do."""

import base64
import io
import json
import re
import shutil
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest

from conftest import (
    DEFAULT_ACCOUNT,
    REGION,
    create_function,
    invoke_json,
    request_id,
    unique_name,
    wait_active,
)

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or shutil.which("jar") is None,
    reason="needs a JDK (apt install openjdk-17-jdk-headless)")

JAVA_RUNTIMES = ["java8.al2", "java11", "java17", "java21"]

# The user's bundled aws-lambda-java-core: the interfaces as AWS publishes them (Flint's runtime
# has its own copies on its class path; the bundled ones must link to them).
CORE = {
    "com/amazonaws/services/lambda/runtime/Context.java": """
package com.amazonaws.services.lambda.runtime;
public interface Context {
    String getAwsRequestId(); String getLogGroupName(); String getLogStreamName();
    String getFunctionName(); String getFunctionVersion(); String getInvokedFunctionArn();
    CognitoIdentity getIdentity(); ClientContext getClientContext();
    int getRemainingTimeInMillis(); int getMemoryLimitInMB(); LambdaLogger getLogger();
}""",
    "com/amazonaws/services/lambda/runtime/LambdaLogger.java": """
package com.amazonaws.services.lambda.runtime;
import com.amazonaws.services.lambda.runtime.logging.LogLevel;
public interface LambdaLogger {
    void log(String message); void log(byte[] message);
    default void log(String message, LogLevel logLevel) { log(message); }
    default void log(byte[] message, LogLevel logLevel) { log(message); }
}""",
    "com/amazonaws/services/lambda/runtime/logging/LogLevel.java": """
package com.amazonaws.services.lambda.runtime.logging;
public enum LogLevel { UNDEFINED, TRACE, DEBUG, INFO, WARN, ERROR, FATAL }""",
    "com/amazonaws/services/lambda/runtime/CognitoIdentity.java": """
package com.amazonaws.services.lambda.runtime;
public interface CognitoIdentity { String getIdentityId(); String getIdentityPoolId(); }""",
    "com/amazonaws/services/lambda/runtime/ClientContext.java": """
package com.amazonaws.services.lambda.runtime;
import java.util.Map;
public interface ClientContext {
    Client getClient(); Map<String, String> getCustom(); Map<String, String> getEnvironment();
}""",
    "com/amazonaws/services/lambda/runtime/Client.java": """
package com.amazonaws.services.lambda.runtime;
public interface Client {
    String getInstallationId(); String getAppTitle(); String getAppVersionName();
    String getAppVersionCode(); String getAppPackageName();
}""",
    "com/amazonaws/services/lambda/runtime/RequestHandler.java": """
package com.amazonaws.services.lambda.runtime;
public interface RequestHandler<I, O> { O handleRequest(I input, Context context); }""",
    "com/amazonaws/services/lambda/runtime/RequestStreamHandler.java": """
package com.amazonaws.services.lambda.runtime;
import java.io.*;
public interface RequestStreamHandler {
    void handleRequest(InputStream input, OutputStream output, Context context) throws IOException;
}""",
}

SOURCES = {
    "example/Echo.java": """
package example;
import com.amazonaws.services.lambda.runtime.*;
import java.util.*;
public class Echo implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    private int count = 0;
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        count++;
        Object action = event.get("action");
        if ("error".equals(action)) {
            throw new RuntimeException("Error: some_error_msg");
        }
        if ("caused".equals(action)) {
            throw new IllegalStateException("outer", new IllegalArgumentException("inner"));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        if ("context".equals(action)) {
            context.getLogger().log("logged through LambdaLogger\\n");
            System.out.println("printed to System.out");
            out.put("aws_request_id", context.getAwsRequestId());
            out.put("function_name", context.getFunctionName());
            out.put("function_version", context.getFunctionVersion());
            out.put("invoked_function_arn", context.getInvokedFunctionArn());
            out.put("log_group_name", context.getLogGroupName());
            out.put("log_stream_name", context.getLogStreamName());
            out.put("memory_limit_in_mb", context.getMemoryLimitInMB());
            out.put("remaining", context.getRemainingTimeInMillis());
            out.put("custom", context.getClientContext() == null ? null
                    : context.getClientContext().getCustom());
            out.put("identity_id", context.getIdentity().getIdentityId());
            out.put("java_version", System.getProperty("java.specification.version"));
            out.put("max_heap_mb", Runtime.getRuntime().maxMemory() / (1024 * 1024));
            out.put("env", System.getenv());
            return out;
        }
        if ("reflect".equals(action)) {
            // What Gson's toJson(context) does: every field, recursively, made accessible.
            out.put("fields", walk(context, 0));
            return out;
        }
        if ("layer".equals(action)) {
            out.put("layer", lib.Greeting.hello());
            return out;
        }
        out.put("event", event);
        out.put("count", count);
        return out;
    }
    static int walk(Object o, int depth) {
        if (o == null || depth > 4 || o instanceof CharSequence || o instanceof Number
                || o instanceof Boolean || o instanceof Map) {
            return 0;
        }
        int n = 0;
        for (Class<?> c = o.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (java.lang.reflect.Field f : c.getDeclaredFields()) {
                if (java.lang.reflect.Modifier.isStatic(f.getModifiers())) continue;
                f.setAccessible(true);
                n++;
                try {
                    n += walk(f.get(o), depth + 1);
                } catch (IllegalAccessException e) {
                    throw new RuntimeException(e);
                }
            }
        }
        return n;
    }
}""",
    "example/Pojos.java": """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import java.util.*;
public class Pojos {
    public static class Request {
        private String bucket;
        private String key;
        private List<Integer> sizes;
        public String getBucket() { return bucket; }
        public void setBucket(String b) { bucket = b; }
        public String getKey() { return key; }
        public void setKey(String k) { key = k; }
        public List<Integer> getSizes() { return sizes; }
        public void setSizes(List<Integer> s) { sizes = s; }
    }
    public static class Response {
        private final String bucket;
        private final String key;
        private final boolean validated;
        private final int total;
        Response(String bucket, String key, boolean validated, int total) {
            this.bucket = bucket; this.key = key; this.validated = validated; this.total = total;
        }
        public String getBucket() { return bucket; }
        public String getKey() { return key; }
        public boolean isValidated() { return validated; }
        public int getTotal() { return total; }
    }
    public Response handle(Request request, Context context) {
        int total = 0;
        if (request.getSizes() != null) for (int s : request.getSizes()) total += s;
        return new Response(request.getBucket(), request.getKey(), true, total);
    }
    public static String upper(String input) { return input.toUpperCase(); }
    public static int twice(int n) { return n * 2; }
    public List<String> listed(List<String> in) { List<String> l = new ArrayList<>(in); Collections.reverse(l); return l; }
}""",
    "example/Stream.java": """
package example;
import com.amazonaws.services.lambda.runtime.*;
import java.io.*;
public class Stream implements RequestStreamHandler {
    public void handleRequest(InputStream in, OutputStream out, Context context) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        byte[] b = new byte[4096];
        int n;
        while ((n = in.read(b)) > 0) buf.write(b, 0, n);
        out.write(("{\\"raw\\":" + buf.toString("UTF-8") + "}").getBytes("UTF-8"));
    }
}""",
    "example/Custom.java": """
package example;
import com.amazonaws.services.lambda.runtime.*;
public class Custom implements RequestHandler<String, String> {
    public String handleRequest(String input, Context context) { return "INTERFACE"; }
    public String handleRequestCustom(String input, Context context) { return "CUSTOM"; }
}""",
    "example/Levels.java": """
package example;
import com.amazonaws.services.lambda.runtime.*;
import com.amazonaws.services.lambda.runtime.logging.LogLevel;
public class Levels implements RequestHandler<String, String> {
    public String handleRequest(String marker, Context context) {
        if (marker.startsWith("boom")) throw new IllegalStateException(marker);
        LambdaLogger logger = context.getLogger();
        logger.log("plain:" + marker);
        logger.log("debug:" + marker, LogLevel.DEBUG);
        logger.log("info:" + marker, LogLevel.INFO);
        logger.log("warn:" + marker, LogLevel.WARN);
        System.out.println("stdout:" + marker);
        return marker;
    }
}""",
    "example/BrokenInit.java": """
package example;
public class BrokenInit {
    static { if (true) throw new IllegalStateException("static init failed"); }
    public String handle(String in) { return in; }
}""",
}

LAYER_SOURCE = {
    "lib/Greeting.java": """
package lib;
public class Greeting { public static String hello() { return "hello from a java layer"; } }""",
}


def arn(name):
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


def compile_java(tmp: Path, sources: dict, classpath=None) -> Path:
    src = tmp / "src"
    out = tmp / "classes"
    for rel, text in sources.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["javac", "--release", "11", "-d", str(out)]
    if classpath:
        cmd += ["-cp", str(classpath)]
    cmd += [str(p) for p in src.rglob("*.java")]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def jar(classes: Path, target: Path) -> Path:
    subprocess.run(["jar", "cf", str(target), "-C", str(classes), "."], check=True,
                   capture_output=True)
    return target


def zip_tree(entries: dict) -> bytes:
    """entries: archive name -> bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries.items()):
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """The layer's jar, and the function's zip: its classes at the root, aws-lambda-java-core's
    interfaces in lib/core.jar (as Maven/Gradle zips lay them out)."""
    tmp = tmp_path_factory.mktemp("java")
    layer_classes = compile_java(tmp / "layer", LAYER_SOURCE)
    layer_jar = jar(layer_classes, tmp / "greeting.jar")
    core_classes = compile_java(tmp / "core", CORE)
    core_jar = jar(core_classes, tmp / "core.jar")
    fn_classes = compile_java(tmp / "fn", SOURCES, classpath=f"{core_jar}:{layer_jar}")
    entries = {str(p.relative_to(fn_classes)): p.read_bytes()
               for p in fn_classes.rglob("*.class")}
    entries["lib/core.jar"] = core_jar.read_bytes()
    return {
        "function": zip_tree(entries),
        "layer": zip_tree({"java/lib/greeting.jar": layer_jar.read_bytes()}),
    }


@pytest.fixture(scope="module")
def java_functions(lambda_client, artifacts):
    names = {}
    for runtime in JAVA_RUNTIMES:
        names[runtime] = unique_name(runtime.replace(".", ""))
        create_function(lambda_client, names[runtime], runtime=runtime, handler="example.Echo",
                        zip_bytes=artifacts["function"], MemorySize=512, Timeout=30, wait=False)
    return names


@pytest.mark.parametrize("runtime", JAVA_RUNTIMES)
def test_java_request_handler_gets_the_event_and_the_context(lambda_client, java_functions,
                                                             runtime):
    name = java_functions[runtime]
    wait_active(lambda_client, name)
    event = {"runtime": runtime, "list": [1, 2.5, None, True], "nested": {"ü": "ß"}}
    resp, payload = invoke_json(lambda_client, name, event)
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
    assert payload == {"event": event, "count": 1}

    resp, ctx = invoke_json(lambda_client, name, {"action": "context"}, LogType="Tail",
                            ClientContext=base64.b64encode(b'{"custom":{"k":"v"}}').decode())
    assert ctx["aws_request_id"] == request_id(resp)
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == arn(name)
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert ctx["log_stream_name"] == ctx["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert ctx["memory_limit_in_mb"] == 512
    assert 0 < ctx["remaining"] <= 30000
    assert ctx["custom"] == {"k": "v"}
    assert ctx["identity_id"] == ""
    # AWS's flags: MaxHeapSize is 85 % of the function's memory.
    assert 400 <= ctx["max_heap_mb"] <= 435, ctx["max_heap_mb"]
    assert ctx["env"]["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert ctx["env"]["_HANDLER"] == "example.Echo"
    tail = base64.b64decode(resp["LogResult"]).decode()
    assert "logged through LambdaLogger" in tail
    assert "printed to System.out" in tail

    # Warm: the handler instance survives to the next invoke.
    _, again = invoke_json(lambda_client, name, {"second": True})
    assert again == {"event": {"second": True}, "count": 3}


def test_java_context_can_be_serialised_reflectively(lambda_client, java_functions):
    # Functions log `gson.toJson(context)` (LocalStack's suite does): the context must hold no
    # JDK object whose fields java.base keeps closed.
    name = java_functions["java17"]
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {"action": "reflect"})
    assert "FunctionError" not in resp, payload
    assert payload["fields"] > 5


def test_java_error_payload_is_awss(lambda_client, java_functions):
    name = java_functions["java17"]
    wait_active(lambda_client, name)
    resp, payload = invoke_json(lambda_client, name, {"action": "error"})
    assert resp["FunctionError"] == "Unhandled"
    # Recorded (test_uncaught_exception_invoke[java21]): errorMessage, errorType = the class.
    assert payload["errorMessage"] == "Error: some_error_msg"
    assert payload["errorType"] == "java.lang.RuntimeException"
    assert payload["stackTrace"][0].startswith("example.Echo.handleRequest(Echo.java:")
    assert not any("flint" in frame for frame in payload["stackTrace"])

    _, payload = invoke_json(lambda_client, name, {"action": "caused"})
    assert payload["errorType"] == "java.lang.IllegalStateException"
    assert payload["errorMessage"] == "outer"
    assert payload["cause"]["errorType"] == "java.lang.IllegalArgumentException"
    assert payload["cause"]["errorMessage"] == "inner"

    # The environment goes on serving.
    _, payload = invoke_json(lambda_client, name, {"after": "error"})
    assert payload["event"] == {"after": "error"}


@pytest.mark.parametrize("handler,event,expected", [
    # POJO in and out (recorded test_serializable_input_object: bucket, key, validated).
    ("example.Pojos::handle", {"bucket": "test_bucket", "key": "test_key", "sizes": [1, 2],
                               "unknown": "ignored"},
     {"bucket": "test_bucket", "key": "test_key", "validated": True, "total": 3}),
    ("example.Pojos::upper", "flint", "FLINT"),
    ("example.Pojos::twice", 21, 42),
    ("example.Pojos::listed", ["a", "b", "c"], ["c", "b", "a"]),
    ("example.Stream", {"k": [1, 2]}, {"raw": {"k": [1, 2]}}),
    ("example.Stream::handleRequest", {}, {"raw": {}}),
    # Recorded test_java_custom_handler_method_specification: the named method wins.
    ("example.Custom", "x", "INTERFACE"),
    ("example.Custom::handleRequest", "x", "INTERFACE"),
    ("example.Custom::handleRequestCustom", "x", "CUSTOM"),
])
def test_java_handler_styles_and_serialisation(lambda_client, artifacts, handler, event, expected):
    name = unique_name("java-style")
    create_function(lambda_client, name, runtime="java17", handler=handler,
                    zip_bytes=artifacts["function"], Timeout=30)
    resp, payload = invoke_json(lambda_client, name, event)
    assert "FunctionError" not in resp, payload
    assert payload == expected


def test_java_bad_input_is_awss_json_parsing_error(lambda_client, artifacts):
    name = unique_name("java-badjson")
    create_function(lambda_client, name, runtime="java17", handler="example.Pojos::twice",
                    zip_bytes=artifacts["function"], Timeout=30)
    resp, payload = invoke_json(lambda_client, name, {"not": "a number"})
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorMessage"] == "An error occurred during JSON parsing"
    assert payload["errorType"] == "java.lang.RuntimeException"
    assert payload["cause"]["errorType"] == "java.io.UncheckedIOException"


@pytest.mark.parametrize("handler,error_type,message", [
    ("example.Missing", "java.lang.ClassNotFoundException", "Class not found: example.Missing"),
    ("example.Pojos::nope", "java.lang.NoSuchMethodException",
     "No public method named nope with appropriate method signature found on class example.Pojos"),
    ("example.BrokenInit::handle", "java.lang.IllegalStateException",
     "Error loading class example.BrokenInit: static init failed"),
])
def test_java_init_errors(lambda_client, artifacts, handler, error_type, message):
    name = unique_name("java-init")
    create_function(lambda_client, name, runtime="java17", handler=handler,
                    zip_bytes=artifacts["function"], Timeout=30)
    for _ in range(2):  # a failed init is attempted again at the next invoke
        resp, payload = invoke_json(lambda_client, name, {})
        assert resp["FunctionError"] == "Unhandled", payload
        assert payload["errorType"] == error_type
        assert payload["errorMessage"] == message


def test_java_layer_jars_are_on_the_class_path(lambda_client, artifacts):
    layer = lambda_client.publish_layer_version(
        LayerName=unique_name("java-layer"), Content={"ZipFile": artifacts["layer"]},
        CompatibleRuntimes=["java17"])
    name = unique_name("java-layered")
    create_function(lambda_client, name, runtime="java17", handler="example.Echo",
                    zip_bytes=artifacts["function"], Layers=[layer["LayerVersionArn"]],
                    Timeout=30)
    resp, payload = invoke_json(lambda_client, name, {"action": "layer"})
    assert "FunctionError" not in resp, payload
    assert payload == {"layer": "hello from a java layer"}


def test_java_tool_options_reach_the_jvm(lambda_client, artifacts):
    name = unique_name("java-toolopts")
    create_function(lambda_client, name, runtime="java17", handler="example.Echo",
                    zip_bytes=artifacts["function"], Timeout=30, MemorySize=256,
                    Environment={"Variables": {"JAVA_TOOL_OPTIONS": "-Xmx100m"}})
    resp, ctx = invoke_json(lambda_client, name, {"action": "context"}, LogType="Tail")
    assert "FunctionError" not in resp, ctx
    assert ctx["max_heap_mb"] <= 100, ctx["max_heap_mb"]
    assert ctx["env"]["JAVA_TOOL_OPTIONS"] == "-Xmx100m"
    assert "Picked up JAVA_TOOL_OPTIONS: -Xmx100m" in base64.b64decode(resp["LogResult"]).decode()


def test_flint_runtimes_lists_the_java_runtimes_and_their_jvm(flint_bin):
    out = subprocess.run([str(flint_bin), "runtimes"], capture_output=True, text=True,
                         check=True).stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for runtime in JAVA_RUNTIMES + ["java25"]:
        row = rows[runtime]
        java, version = row.split()[1:3]
        assert java.endswith("/bin/java"), row
        major = runtime.removeprefix("java").removesuffix(".al2")
        if version.split(".")[0] != major:
            assert "nearest version stands in" in row, row


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


def test_java_json_log_format_writes_lambda_logger_records(lambda_client, artifacts):
    """LoggingConfig.LogFormat JSON: LambdaLogger writes AWS's Java records ({timestamp, message,
    level, AWSRequestId}), filtered at ApplicationLogLevel (INFO by default; UNDEFINED always
    passes); System.out stays text; a handler's exception is one record at ERROR."""
    name = unique_name("java-jsonlog")
    create_function(lambda_client, name, runtime="java21", handler="example.Levels",
                    zip_bytes=artifacts["function"], MemorySize=512, Timeout=30,
                    LoggingConfig={"LogFormat": "JSON"})
    marker = uuid.uuid4().hex
    resp, payload = invoke_json(lambda_client, name, marker, LogType="Tail")
    assert payload == marker
    rid = request_id(resp)
    records, plain = json_records(base64.b64decode(resp["LogResult"]).decode())
    app = {r["message"]: r for r in records if marker in str(r.get("message"))}
    assert set(app) == {f"plain:{marker}", f"info:{marker}", f"warn:{marker}"}, records
    assert list(app[f"warn:{marker}"]) == ["timestamp", "message", "level", "AWSRequestId"]
    assert app[f"warn:{marker}"]["level"] == "WARN"
    assert app[f"info:{marker}"]["level"] == "INFO"
    assert app[f"plain:{marker}"]["level"] == "UNDEFINED"
    assert all(r["AWSRequestId"] == rid for r in app.values())
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
                    app[f"warn:{marker}"]["timestamp"])
    assert f"stdout:{marker}" in plain

    resp, payload = invoke_json(lambda_client, name, f"boom-{marker}", LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    records, _ = json_records(base64.b64decode(resp["LogResult"]).decode())
    errors = [r for r in records if r.get("level") == "ERROR"]
    assert errors and f"boom-{marker}" in errors[0]["message"], records
    assert errors[0]["AWSRequestId"] == request_id(resp)


def test_java_log_levels_in_the_text_format_and_application_log_level(lambda_client, artifacts):
    """Text: `log(message, level)` is "[LEVEL] message", nothing filtered. JSON with
    ApplicationLogLevel WARN: only WARN and above (and UNDEFINED) are kept."""
    name = unique_name("java-textlog")
    create_function(lambda_client, name, runtime="java21", handler="example.Levels",
                    zip_bytes=artifacts["function"], MemorySize=512, Timeout=30)
    marker = uuid.uuid4().hex
    resp, _ = invoke_json(lambda_client, name, marker, LogType="Tail")
    lines = base64.b64decode(resp["LogResult"]).decode().splitlines()
    assert f"plain:{marker}" in lines
    assert f"[DEBUG] debug:{marker}" in lines
    assert f"[WARN] warn:{marker}" in lines

    lambda_client.update_function_configuration(
        FunctionName=name, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    wait_active(lambda_client, name)
    resp, _ = invoke_json(lambda_client, name, marker, LogType="Tail")
    records, _ = json_records(base64.b64decode(resp["LogResult"]).decode())
    kept = sorted(r["message"] for r in records if marker in str(r.get("message")))
    assert kept == [f"plain:{marker}", f"warn:{marker}"], records
