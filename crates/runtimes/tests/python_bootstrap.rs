//! The Python bootstrap run by the real interpreter (not sandboxed) against a fake Runtime API:
//! results, context, errors and init errors must look as AWS's Python runtime makes them.

mod support;

use std::time::{Duration, Instant};
use support::{launch_of, Function, Invocation, PostKind, FUNCTION_ARN};

const RUNTIME: &str = "python3.11";

const APP: &str = r#"
import logging
import os

def handler(event, context):
    return {
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity_id": context.identity.cognito_identity_id,
        "client_context": context.client_context,
        "remaining": context.get_remaining_time_in_millis(),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
        "cwd": os.getcwd(),
    }

def fails(event, context):
    raise ValueError("boom: " + event["why"])

def unserialisable(event, context):
    return {1, 2}

def logs(event, context):
    print("plain print")
    logging.getLogger().warning("careful %s", "now")
    logging.getLogger().info("hidden at the default level")
    return None
"#;

#[test]
fn python_handler_returns_a_dict_and_context_fields_arrive() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "app.handler", &[("app.py", APP)], &[]);
    let post = f.invoke("req-1", r#"{"hello": "world", "n": 1}"#);
    assert_eq!(post.kind, PostKind::Response("req-1".into()));
    assert_eq!(
        post.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let body = post.json();
    assert_eq!(body["event"], serde_json::json!({"hello": "world", "n": 1}));
    assert_eq!(body["function_name"], "my-function");
    assert_eq!(body["function_version"], "$LATEST");
    assert_eq!(body["invoked_function_arn"], FUNCTION_ARN);
    // A string, as on Lambda.
    assert_eq!(body["memory_limit_in_mb"], "128");
    assert_eq!(body["aws_request_id"], "req-1");
    assert_eq!(body["log_group_name"], "/aws/lambda/my-function");
    assert!(body["identity_id"].is_null());
    assert!(body["client_context"].is_null());
    let remaining = body["remaining"].as_i64().expect("int");
    assert!(
        remaining > 25_000 && remaining <= 30_000,
        "remaining {remaining}"
    );
    assert!(body["trace"]
        .as_str()
        .is_some_and(|t| t.starts_with("Root=1-")));
    assert_eq!(body["execution_env"], "AWS_Lambda_python3.11");
    assert_eq!(
        body["cwd"],
        f.task_path()
            .canonicalize()
            .expect("c")
            .display()
            .to_string()
    );
}

#[test]
fn python_raised_exception_posts_an_error_with_its_stack_trace() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "app.fails", &[("app.py", APP)], &[]);
    let post = f.invoke("req-2", r#"{"why": "bad input"}"#);
    assert_eq!(post.kind, PostKind::Error("req-2".into()));
    assert_eq!(
        post.headers
            .get("lambda-runtime-function-error-type")
            .map(String::as_str),
        Some("ValueError")
    );
    let body = post.json();
    let keys: Vec<_> = body.as_object().expect("object").keys().cloned().collect();
    assert_eq!(
        keys,
        ["errorMessage", "errorType", "requestId", "stackTrace"]
    );
    assert_eq!(body["errorMessage"], "boom: bad input");
    assert_eq!(body["errorType"], "ValueError");
    assert_eq!(body["requestId"], "req-2");
    let trace = body["stackTrace"].as_array().expect("array");
    assert_eq!(trace.len(), 1, "bootstrap frames are cut: {trace:?}");
    let app = f.task_path().join("app.py");
    assert_eq!(
        trace[0],
        format!(
            "  File \"{}\", line 24, in fails\n    raise ValueError(\"boom: \" + event[\"why\"])\n",
            app.display()
        )
    );
    // The error is logged too, one record, lines joined by \r as Lambda's runtime does.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f
        .stdout()
        .contains("[ERROR] ValueError: boom: bad input\rTraceback")
    {
        assert!(Instant::now() < deadline, "stdout: {:?}", f.stdout());
        std::thread::sleep(Duration::from_millis(10));
    }
    // The environment stays up for the next invoke.
    let post = f.invoke("req-3", r#"{"why": "again"}"#);
    assert_eq!(post.kind, PostKind::Error("req-3".into()));
}

#[test]
fn python_missing_module_is_an_import_module_error_at_init() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let mut f = Function::start(&launch, "nomod.handler", &[("app.py", APP)], &[]);
    let posts = f.api.wait_posts(1, Duration::from_secs(20));
    assert_eq!(posts[0].kind, PostKind::InitError);
    assert_eq!(
        posts[0].json(),
        serde_json::json!({
            "errorMessage": "Unable to import module 'nomod': No module named 'nomod'",
            "errorType": "Runtime.ImportModuleError",
            "requestId": "",
            "stackTrace": []
        })
    );
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(1));
    assert!(f
        .stdout_with("LAMBDA_WARNING: Unhandled exception.")
        .contains("LAMBDA_WARNING: Unhandled exception."));
    assert_eq!(
        f.api.nexts(),
        0,
        "no invocation is asked for after a failed init"
    );
}

#[test]
fn python_missing_function_is_handler_not_found() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let mut f = Function::start(&launch, "app.nope", &[("app.py", APP)], &[]);
    let posts = f.api.wait_posts(1, Duration::from_secs(20));
    assert_eq!(posts[0].kind, PostKind::InitError);
    let body = posts[0].json();
    assert_eq!(body["errorType"], "Runtime.HandlerNotFound");
    assert_eq!(
        body["errorMessage"],
        "Handler 'nope' missing on module 'app'"
    );
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(1));
}

#[test]
fn python_malformed_handler_and_syntax_errors_are_reported_at_init() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "nodot", &[("app.py", APP)], &[]);
    let body = f.api.wait_posts(1, Duration::from_secs(20))[0].json();
    assert_eq!(body["errorType"], "Runtime.MalformedHandlerName");
    assert_eq!(
        body["errorMessage"],
        "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)"
    );

    let f = Function::start(
        &launch,
        "broken.handler",
        &[("broken.py", "def handler(:\n")],
        &[],
    );
    let body = f.api.wait_posts(1, Duration::from_secs(20))[0].json();
    assert_eq!(body["errorType"], "Runtime.UserCodeSyntaxError");
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("Syntax error in module 'broken': ")),
        "{body}"
    );
}

#[test]
fn python_exception_at_import_is_an_init_error_of_that_type() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(
        &launch,
        "startup.handler",
        &[("startup.py", "raise Exception(\"Runtime startup fails\")\n")],
        &[],
    );
    let body = f.api.wait_posts(1, Duration::from_secs(20))[0].json();
    assert_eq!(body["errorType"], "Exception");
    assert_eq!(body["errorMessage"], "Runtime startup fails");
    assert_eq!(body["requestId"], "");
    let last = body["stackTrace"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|l| l.as_str())
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("startup.py\", line 1, in <module>"), "{body}");
}

#[test]
fn python_handler_paths_may_use_slashes_or_dots() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let files = [
        ("src/app.py", "def handler(e, c):\n    return 'slash'\n"),
        ("pkg/__init__.py", ""),
        ("pkg/mod.py", "def handler(e, c):\n    return 'dotted'\n"),
    ];
    let f = Function::start(&launch, "src/app.handler", &files, &[]);
    assert_eq!(f.invoke("a", "{}").json(), "slash");
    let f = Function::start(&launch, "pkg.mod.handler", &files, &[]);
    assert_eq!(f.invoke("b", "{}").json(), "dotted");
}

#[test]
fn python_unserialisable_result_is_a_marshal_error() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "app.unserialisable", &[("app.py", APP)], &[]);
    let post = f.invoke("req-m", "{}");
    assert_eq!(post.kind, PostKind::Error("req-m".into()));
    let body = post.json();
    assert_eq!(body["errorType"], "Runtime.MarshalError");
    assert_eq!(
        body["errorMessage"],
        "Unable to marshal response: Object of type set is not JSON serializable"
    );
    assert_eq!(body["requestId"], "req-m");
}

#[test]
fn python_logging_uses_lambdas_line_format() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "app.logs", &[("app.py", APP)], &[]);
    let post = f.invoke("req-log", "{}");
    assert_eq!(post.body, b"null");
    let out = f.stdout_with("[WARNING]");
    assert!(out.contains("plain print\n"), "{out:?}");
    let line = out
        .lines()
        .find(|l| l.starts_with("[WARNING]"))
        .unwrap_or_else(|| panic!("no warning line in {out:?}"));
    let fields: Vec<_> = line.split('\t').collect();
    assert_eq!(fields.len(), 4, "{line:?}");
    assert_eq!(fields[2], "req-log");
    assert_eq!(fields[3], "careful now");
    // 2026-11-21T19:53:00.123Z
    assert!(
        fields[1].len() == 24 && fields[1].ends_with('Z'),
        "{line:?}"
    );
    assert!(!out.contains("hidden at the default level"));
}

#[test]
fn python_json_log_format_writes_json_records() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(
        &launch,
        "app.logs",
        &[("app.py", APP)],
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ],
    );
    f.invoke("req-json", "{}");
    let out = f.stdout_with("careful now");
    let records: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let warning = records
        .iter()
        .find(|r| r["level"] == "WARNING")
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(warning["message"], "careful now");
    assert_eq!(warning["requestId"], "req-json");
    assert_eq!(warning["logger"], "root");
    assert!(
        records.iter().any(|r| r["level"] == "INFO"),
        "INFO enabled by AWS_LAMBDA_LOG_LEVEL"
    );
}

#[test]
fn python_reads_chunked_events_and_client_context_and_identity_headers() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "app.handler", &[("app.py", APP)], &[]);
    f.api.set_chunked_next(true);
    let mut invocation = Invocation::json("c1", r#"{"chunked": "yes, split in two"}"#);
    invocation.headers = vec![(
        "Lambda-Runtime-Cognito-Identity".into(),
        r#"{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}"#.into(),
    )];
    let body = f.invoke_with(invocation).json();
    assert_eq!(
        body["event"],
        serde_json::json!({"chunked": "yes, split in two"})
    );
    assert_eq!(body["identity_id"], "id-1");
    // context.client_context is an object (not JSON-serialisable, as on Lambda): read its fields.
    let f2 = Function::start(
        &launch,
        "cc.handler",
        &[("cc.py", "def handler(e, c):\n    return [c.client_context.custom, c.client_context.env, c.client_context.client.app_title]\n")],
        &[],
    );
    let mut invocation = Invocation::json("c2", "{}");
    invocation.headers = vec![(
        "Lambda-Runtime-Client-Context".into(),
        r#"{"custom": {"foo": "bar"}, "env": {"fizz": "buzz"}, "client": {"app_title": "t"}}"#
            .into(),
    )];
    assert_eq!(
        f2.invoke_with(invocation).json(),
        serde_json::json!([{"foo": "bar"}, {"fizz": "buzz"}, "t"])
    );
}

#[test]
fn python_keeps_one_connection_across_invokes() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "app.handler", &[("app.py", APP)], &[]);
    for i in 0..5 {
        let post = f.invoke(&format!("r{i}"), "{}");
        assert_eq!(post.kind, PostKind::Response(format!("r{i}")));
    }
    assert_eq!(f.api.connections(), 1);
}

#[test]
fn python_per_invoke_overhead() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(
        &launch,
        "echo.handler",
        &[("echo.py", "def handler(e, c):\n    return e\n")],
        &[],
    );
    let init = f.time_to_first_next();
    eprintln!("python bootstrap: {init:?} from spawn to the first /next (init)");
    f.invoke("warm", "{}");
    let n = 1000;
    let cpu_before = f.cpu_time();
    let started = Instant::now();
    for i in 0..n {
        f.invoke(&format!("bench-{i}"), r#"{"k": "v"}"#);
    }
    let per = started.elapsed() / n;
    let cpu = (f.cpu_time() - cpu_before) / n;
    eprintln!(
        "python bootstrap: {per:?} per invoke round trip, {cpu:?} CPU in the runtime per invoke, \
         over {n} invokes (fake Runtime API)"
    );
    assert!(
        per < Duration::from_millis(5),
        "per-invoke overhead {per:?}"
    );
}

#[test]
fn python_cold_start_imports_no_module_only_errors_or_logs_need() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let app = r#"
import sys

HEAVY = ("logging", "traceback", "importlib", "socket", "http.client", "asyncio", "encodings.idna")
AT_INIT = sorted(m for m in HEAVY if m in sys.modules)

def handler(event, context):
    return {"at_init": AT_INIT, "now": sorted(m for m in HEAVY if m in sys.modules)}
"#;
    let f = Function::start(&launch, "lean.handler", &[("lean.py", app)], &[]);
    let body = f.invoke("req-lean", "{}").json();
    assert_eq!(body["at_init"], serde_json::json!([]), "{body}");
    assert_eq!(body["now"], serde_json::json!([]), "{body}");
}

#[test]
fn python_logging_imported_by_the_function_is_configured_within_that_import() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    // A logging.py of the function's own does not replace the standard one: the runtime
    // loaded (on Lambda) or finds (here) logging before /var/task is on the path.
    let app = r#"
import logging

logging.getLogger().warning("logged during init")
ROOT = logging.getLogger()
HANDLERS = [type(h).__name__ for h in ROOT.handlers]

def handler(event, context):
    return {"handlers": HANDLERS, "level": ROOT.level, "file": logging.__file__,
            "loader": type(logging.__loader__).__name__}
"#;
    let f = Function::start(
        &launch,
        "app.handler",
        &[
            ("app.py", app),
            ("logging.py", "raise RuntimeError('shadowed')\n"),
        ],
        &[("AWS_LAMBDA_LOG_LEVEL", "ERROR")],
    );
    let body = f.invoke("req-init-log", "{}").json();
    assert_eq!(body["handlers"], serde_json::json!(["LambdaLoggerHandler"]));
    assert_eq!(body["level"], 40, "AWS_LAMBDA_LOG_LEVEL applies: {body}");
    assert_eq!(body["loader"], "SourceFileLoader");
    let file = body["file"].as_str().expect("file");
    assert!(file.ends_with("/logging/__init__.py"), "{file}");
    // At level ERROR the init warning is filtered out, in Lambda's format or any other.
    assert!(!f.stdout().contains("logged during init"));
    assert!(!f.stderr().contains("logged during init"));

    let f = Function::start(&launch, "app.handler", &[("app.py", app)], &[]);
    f.invoke("req-init-log-2", "{}");
    let out = f.stdout_with("logged during init");
    let line = out
        .lines()
        .find(|l| l.ends_with("logged during init"))
        .unwrap_or_else(|| panic!("{out:?}"));
    let fields: Vec<_> = line.split('\t').collect();
    assert_eq!(fields[0], "[WARNING]", "{line:?}");
    assert_eq!(fields[2], "", "no request id during init: {line:?}");
}

#[test]
fn python_socket_default_timeout_set_by_the_function_does_not_break_next() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let app = r#"
import socket
socket.setdefaulttimeout(0.05)

def handler(event, context):
    return event
"#;
    let f = Function::start(&launch, "app.handler", &[("app.py", app)], &[]);
    // /next is held well past the function's default timeout before an invocation arrives: the
    // idle gap is the scenario, counted from the runtime's first /next.
    f.time_to_first_next();
    std::thread::sleep(Duration::from_millis(300));
    let post = f.invoke("req-idle", r#"{"still": "here"}"#);
    assert_eq!(post.kind, PostKind::Response("req-idle".into()));
    assert_eq!(post.json(), serde_json::json!({"still": "here"}));
}

#[test]
fn python_runtime_dir_stays_off_the_path_even_with_pythonsafepath() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let app = r#"
import sys

def handler(event, context):
    return {"path": sys.path}
"#;
    for extra in [&[][..], &[("PYTHONSAFEPATH", "1")][..]] {
        let f = Function::start(&launch, "app.handler", &[("app.py", app)], extra);
        let body = f.invoke("req-path", "{}").json();
        let path: Vec<String> = body["path"]
            .as_array()
            .expect("list")
            .iter()
            .map(|p| p.as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            path[0],
            f.task.path().display().to_string(),
            "{extra:?}: {path:?}"
        );
        let own = f.runtime_dir.path().join("python").display().to_string();
        assert!(!path.contains(&own), "{extra:?}: {path:?}");
    }
}
