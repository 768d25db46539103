//! The Node.js bootstrap run by the real node (not sandboxed) against a fake Runtime API:
//! CommonJS and ES module handlers, callbacks and promises, context, errors and init errors must
//! look as AWS's Node.js runtime makes them.

mod support;

use std::time::{Duration, Instant};
use support::{launch_of, Function, Invocation, PostKind, FUNCTION_ARN};

const RUNTIME: &str = "nodejs20.x";

const CJS: &str = r#"
exports.handler = (event, context, callback) => {
  callback(null, {
    event,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    identity: context.identity,
    clientContext: context.clientContext,
    remaining: context.getRemainingTimeInMillis(),
    waits: context.callbackWaitsForEmptyEventLoop,
    trace: process.env._X_AMZN_TRACE_ID,
    executionEnv: process.env.AWS_EXECUTION_ENV,
  });
};
exports.asyncHandler = async (event, context) => ({ async: true, id: context.awsRequestId });
exports.throws = async () => { throw new TypeError('bad thing'); };
exports.nested = { deeper: { fn: async () => 'nested' } };
exports.logs = async () => { console.log('hello %s', 'there'); console.error('multi\nline'); return 1; };
exports.late = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => {}, 300);
  callback(null, 'late');
};
exports.rejectsLater = async () => { Promise.reject(new Error('nobody catches me')); return new Promise(() => {}); };
exports.neverSettles = async () => new Promise(() => {});
exports.syncNoCallback = (event) => { };
"#;

#[test]
fn node_commonjs_callback_handler_gets_the_context() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.handler", &[("index.js", CJS)], &[]);
    let post = f.invoke("req-1", r#"{"hello": "world"}"#);
    assert_eq!(post.kind, PostKind::Response("req-1".into()));
    let body = post.json();
    assert_eq!(body["event"], serde_json::json!({"hello": "world"}));
    assert_eq!(body["functionName"], "my-function");
    assert_eq!(body["functionVersion"], "$LATEST");
    assert_eq!(body["invokedFunctionArn"], FUNCTION_ARN);
    assert_eq!(body["memoryLimitInMB"], "128");
    assert_eq!(body["awsRequestId"], "req-1");
    assert_eq!(body["logGroupName"], "/aws/lambda/my-function");
    assert!(
        body.get("identity").is_none(),
        "undefined without a cognito header"
    );
    let remaining = body["remaining"].as_i64().expect("number");
    assert!(remaining > 25_000 && remaining <= 30_000, "{remaining}");
    assert_eq!(body["waits"], true);
    assert!(body["trace"]
        .as_str()
        .is_some_and(|t| t.starts_with("Root=1-")));
    assert_eq!(body["executionEnv"], "AWS_Lambda_nodejs20.x");
}

#[test]
fn node_async_and_nested_export_handlers() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.asyncHandler", &[("index.js", CJS)], &[]);
    assert_eq!(
        f.invoke("a1", "{}").json(),
        serde_json::json!({"async": true, "id": "a1"})
    );
    let f = Function::start(&launch, "index.nested.deeper.fn", &[("index.js", CJS)], &[]);
    assert_eq!(f.invoke("n1", "{}").json(), "nested");
}

#[test]
fn node_mjs_and_type_module_handlers_load_as_es_modules() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let mjs = "export const handler = async (event) => ({ esm: import.meta.url.endsWith('app.mjs'), event });\n";
    let f = Function::start(&launch, "app.handler", &[("app.mjs", mjs)], &[]);
    assert_eq!(
        f.invoke("m1", "[1,2]").json(),
        serde_json::json!({"esm": true, "event": [1, 2]})
    );
    let files = [
        ("package.json", r#"{"type": "module"}"#),
        (
            "src/handlers/app.js",
            "export async function handler() { return typeof require; }\n",
        ),
    ];
    let f = Function::start(&launch, "src/handlers/app.handler", &files, &[]);
    assert_eq!(f.invoke("m2", "{}").json(), "undefined");
}

#[test]
fn node_thrown_error_posts_type_message_and_trace() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.throws", &[("index.js", CJS)], &[]);
    let post = f.invoke("e1", "{}");
    assert_eq!(post.kind, PostKind::Error("e1".into()));
    assert_eq!(
        post.headers
            .get("lambda-runtime-function-error-type")
            .map(String::as_str),
        Some("TypeError")
    );
    assert!(post
        .headers
        .contains_key("lambda-runtime-function-xray-error-cause"));
    let body = post.json();
    let keys: Vec<_> = body.as_object().expect("object").keys().cloned().collect();
    assert_eq!(keys, ["errorType", "errorMessage", "trace"]);
    assert_eq!(body["errorType"], "TypeError");
    assert_eq!(body["errorMessage"], "bad thing");
    let trace = body["trace"].as_array().expect("array");
    assert_eq!(trace[0], "TypeError: bad thing");
    assert!(
        trace[1].as_str().is_some_and(|l| l.contains("index.js:")),
        "{trace:?}"
    );
    // Logged as Lambda logs it, and the environment keeps serving.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f
        .stdout()
        .contains("\te1\tERROR\tInvoke Error \t{\"errorType\":\"TypeError\"")
    {
        assert!(Instant::now() < deadline, "stdout: {:?}", f.stdout());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(f.invoke("e2", "{}").kind, PostKind::Error("e2".into()));
}

#[test]
fn node_missing_handler_is_handler_not_found_at_init() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let mut f = Function::start(&launch, "index.nope", &[("index.js", CJS)], &[]);
    let posts = f.api.wait_posts(1, Duration::from_secs(20));
    assert_eq!(posts[0].kind, PostKind::InitError);
    assert_eq!(
        posts[0]
            .headers
            .get("lambda-runtime-function-error-type")
            .map(String::as_str),
        Some("Runtime.HandlerNotFound")
    );
    let body = posts[0].json();
    assert_eq!(body["errorType"], "Runtime.HandlerNotFound");
    assert_eq!(
        body["errorMessage"],
        "index.nope is undefined or not exported"
    );
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(129));
    assert_eq!(f.api.nexts(), 0);
}

#[test]
fn node_missing_module_is_an_import_module_error_with_lambdas_require_stack() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.handler", &[("other.js", CJS)], &[]);
    let body = f.api.wait_posts(1, Duration::from_secs(20))[0].json();
    assert_eq!(body["errorType"], "Runtime.ImportModuleError");
    let runtime_index = f.runtime_dir.path().join("index.mjs");
    assert_eq!(
        body["errorMessage"],
        format!(
            "Error: Cannot find module 'index'\nRequire stack:\n- {}",
            runtime_index.display()
        )
    );
    // stdout_with: the pipe's reader may still be behind the post that already arrived.
    let needle =
        "\tundefined\tERROR\tUncaught Exception \t{\"errorType\":\"Runtime.ImportModuleError\"";
    assert!(f.stdout_with(needle).contains(needle));
}

#[test]
fn node_syntax_error_is_a_user_code_syntax_error() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(
        &launch,
        "index.handler",
        &[("index.js", "exports.handler = (;\n")],
        &[],
    );
    let body = f.api.wait_posts(1, Duration::from_secs(20))[0].json();
    assert_eq!(body["errorType"], "Runtime.UserCodeSyntaxError");
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("SyntaxError: ")),
        "{body}"
    );
}

#[test]
fn node_callback_waits_for_the_empty_event_loop_unless_told_not_to() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.late", &[("index.js", CJS)], &[]);
    let started = Instant::now();
    assert_eq!(f.invoke("w1", r#"{"wait": true}"#).json(), "late");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(280),
        "answered after {waited:?}, before the timer"
    );
    let started = Instant::now();
    assert_eq!(f.invoke("w2", r#"{"wait": false}"#).json(), "late");
    let immediate = started.elapsed();
    assert!(
        immediate < Duration::from_millis(250),
        "answered after {immediate:?}"
    );
}

#[test]
fn node_sync_handler_without_callback_answers_null_when_the_loop_empties() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.syncNoCallback", &[("index.js", CJS)], &[]);
    let post = f.invoke("s1", "{}");
    assert_eq!(post.kind, PostKind::Response("s1".into()));
    assert_eq!(post.body, b"null");
}

#[test]
fn node_async_handler_that_never_settles_is_a_nodejs_exit_error() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.neverSettles", &[("index.js", CJS)], &[]);
    let post = f.invoke("x1", "{}");
    assert_eq!(post.kind, PostKind::Error("x1".into()));
    assert_eq!(post.json()["errorType"], "Runtime.NodeJsExit");
}

#[test]
fn node_unhandled_rejection_fails_the_invoke_and_exits() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let mut f = Function::start(&launch, "index.rejectsLater", &[("index.js", CJS)], &[]);
    let post = f.invoke("u1", "{}");
    assert_eq!(post.kind, PostKind::Error("u1".into()));
    let body = post.json();
    assert_eq!(body["errorType"], "Runtime.UnhandledPromiseRejection");
    assert_eq!(body["errorMessage"], "Error: nobody catches me");
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(128));
}

#[test]
fn node_console_lines_carry_time_request_id_and_level() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.logs", &[("index.js", CJS)], &[]);
    f.invoke("l1", "{}");
    let out = f.stdout_with("\tl1\tERROR\tmulti\rline\n");
    let info = out
        .lines()
        .find(|l| l.ends_with("\thello there"))
        .unwrap_or_else(|| panic!("{out:?}"));
    let fields: Vec<_> = info.split('\t').collect();
    assert_eq!(fields[1..], ["l1", "INFO", "hello there"]);
    assert!(
        fields[0].ends_with('Z') && fields[0].len() == 24,
        "{info:?}"
    );
    assert!(
        out.contains("\tl1\tERROR\tmulti\rline\n"),
        "newlines become \\r: {out:?}"
    );
}

#[test]
fn node_callback_handlers_are_refused_from_nodejs24() {
    let Some(mut launch) = launch_of(RUNTIME) else {
        return;
    };
    for (k, v) in launch.env.iter_mut() {
        if k == "AWS_EXECUTION_ENV" {
            *v = "AWS_Lambda_nodejs24.x".into();
        }
    }
    let f = Function::start(&launch, "index.handler", &[("index.js", CJS)], &[]);
    let body = f.api.wait_posts(1, Duration::from_secs(20))[0].json();
    assert_eq!(body["errorType"], "Runtime.CallbackHandlerDeprecated");
}

#[test]
fn node_reads_chunked_events_and_parses_client_context() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "index.handler", &[("index.js", CJS)], &[]);
    f.api.set_chunked_next(true);
    let mut invocation = Invocation::json("c1", r#"{"chunked": "yes, split in two"}"#);
    invocation.headers = vec![
        (
            "Lambda-Runtime-Client-Context".into(),
            r#"{"custom": {"foo": "bar"}, "client": {"snap": ["crackle", "pop"]}, "env": {"fizz": "buzz"}}"#.into(),
        ),
        ("Lambda-Runtime-Cognito-Identity".into(), r#"{"cognitoIdentityId": "id-1"}"#.into()),
    ];
    let body = f.invoke_with(invocation).json();
    assert_eq!(
        body["event"],
        serde_json::json!({"chunked": "yes, split in two"})
    );
    assert_eq!(body["clientContext"]["custom"]["foo"], "bar");
    assert_eq!(body["identity"]["cognitoIdentityId"], "id-1");
}

#[test]
fn node_streaming_handler_output_is_sent_whole() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let app = r#"
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('hello ');
  await new Promise((r) => setTimeout(r, 10));
  responseStream.write(context.awsRequestId);
  responseStream.end();
});
"#;
    let f = Function::start(&launch, "app.handler", &[("app.mjs", app)], &[]);
    let post = f.invoke("s1", "{}");
    assert_eq!(post.kind, PostKind::Response("s1".into()));
    assert_eq!(
        post.headers.get("content-type").map(String::as_str),
        Some("text/plain")
    );
    assert_eq!(post.body, b"hello s1");
}

#[test]
fn node_keeps_one_connection_and_per_invoke_overhead() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(
        &launch,
        "echo.handler",
        &[("echo.mjs", "export const handler = async (e) => e;\n")],
        &[],
    );
    let init = f.time_to_first_next();
    eprintln!("node bootstrap: {init:?} from spawn to the first /next (init)");
    f.invoke("warm", "{}");
    let n = 1000;
    let cpu_before = f.cpu_time();
    let started = Instant::now();
    for i in 0..n {
        let post = f.invoke(&format!("bench-{i}"), r#"{"k": "v"}"#);
        assert_eq!(post.body, br#"{"k":"v"}"#);
    }
    let per = started.elapsed() / n;
    let cpu = (f.cpu_time() - cpu_before) / n;
    eprintln!(
        "node bootstrap: {per:?} per invoke round trip, {cpu:?} CPU in the runtime per invoke, \
         over {n} invokes (fake Runtime API)"
    );
    assert_eq!(f.api.connections(), 1);
    assert!(
        per < Duration::from_millis(5),
        "per-invoke overhead {per:?}"
    );
}

#[test]
fn node_cold_start_loads_no_builtin_only_streaming_or_es_handlers_need() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    // process.moduleLoadList names every built-in loaded so far. Importing `node:fs` into an ES
    // module would load fs/streams and stream (its ES facade reads every export, ReadStream too);
    // fs/promises is no sign: node's ES loader reads the entry module with it.
    let app = r#"
const HEAVY = /^NativeModule internal\/fs\/streams$/;
const atInit = process.moduleLoadList.filter((m) => HEAVY.test(m));
exports.handler = async () => ({ atInit });
"#;
    let f = Function::start(&launch, "index.handler", &[("index.js", app)], &[]);
    let body = f.invoke("req-lean", "{}").json();
    assert_eq!(body["atInit"], serde_json::json!([]), "{body}");
}

#[test]
fn node_global_gc_is_there_from_init_as_with_expose_gc() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    assert!(
        !launch.args.iter().any(|a| a == "--expose-gc"),
        "the flag would cost node its start-up snapshot: {:?}",
        launch.args
    );
    // What `node --expose-gc` gives: a writable, enumerable, non-configurable global function
    // (from init on), `gc` in new contexts too, and the flag in execArgv.
    let app = r#"
const vm = require('node:vm');
const d = Object.getOwnPropertyDescriptor(globalThis, 'gc');
const atInit = {
  type: typeof gc,
  writable: d.writable,
  enumerable: d.enumerable,
  configurable: d.configurable,
  isFunction: gc instanceof Function,
  name: gc.name,
  source: String(gc),
  inNewContext: vm.runInNewContext('typeof gc'),
  execArgv: process.execArgv,
};
exports.handler = async () => {
  let garbage = [];
  for (let i = 0; i < 100000; i++) garbage.push({ i });
  garbage = null;
  const before = process.memoryUsage().heapUsed;
  gc();
  return { atInit, freed: before > process.memoryUsage().heapUsed };
};
"#;
    let f = Function::start(&launch, "index.handler", &[("index.js", app)], &[]);
    let body = f.invoke("req-gc", "{}").json();
    assert_eq!(
        body["atInit"],
        serde_json::json!({
            "type": "function",
            "writable": true,
            "enumerable": true,
            "configurable": false,
            "isFunction": true,
            "name": "gc",
            "source": "function gc() { [native code] }",
            "inNewContext": "function",
            "execArgv": ["--expose-gc", "--max-http-header-size=81920"],
        }),
        "{body}"
    );
    assert_eq!(body["freed"], true, "{body}");
}
