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
fn node_es_module_handlers_import_packages_from_node_path_as_on_aws() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    // A package only NODE_PATH has (as the runtime's AWS SDK in /var/runtime/node_modules, or a
    // layer's /opt/nodejs/node_modules): Node's own ES resolution would not find it.
    let deps = tempfile::tempdir().expect("deps");
    let pkg = deps.path().join("node_modules/flint-np-pkg");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    std::fs::write(
        pkg.join("package.json"),
        r#"{"name":"flint-np-pkg","type":"module","exports":"./index.js"}"#,
    )
    .expect("write");
    std::fs::write(pkg.join("index.js"), "export const where = 'node-path';\n").expect("write");
    let node_path = format!(
        "/nonexistent/node_modules:{}",
        deps.path().join("node_modules").display()
    );
    let app = "import { where } from 'flint-np-pkg';\nexport const handler = async () => where;\n";
    let f = Function::start(
        &launch,
        "app.handler",
        &[("app.mjs", app)],
        &[("NODE_PATH", &node_path)],
    );
    assert_eq!(f.invoke("np1", "{}").json(), "node-path");
    // Still an import error when no NODE_PATH directory has it.
    let app = "import { x } from 'flint-no-such-pkg';\nexport const handler = async () => x;\n";
    let f = Function::start(
        &launch,
        "app.handler",
        &[("app.mjs", app)],
        &[("NODE_PATH", &node_path)],
    );
    let posts = f.api.wait_posts(1, Duration::from_secs(20));
    assert_eq!(posts[0].kind, PostKind::InitError);
    let body = posts[0].json();
    // AWS's runtime wraps only CommonJS's MODULE_NOT_FOUND as Runtime.ImportModuleError; a missing
    // ES import is reported as the plain Error node throws ("Cannot find package ...").
    assert_eq!(body["errorType"], "Error", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("flint-no-such-pkg")),
        "{body}"
    );
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

const STREAMING: &str = r#"
import fs from 'node:fs';
import { once } from 'node:events';
import { Readable, pipeline } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';

const until = (file) => new Promise((resolve) => {
  const t = setInterval(() => { if (fs.existsSync(file)) { clearInterval(t); resolve(); } }, 5);
});

export const waits = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('first ');
  await until(event.go);
  responseStream.write(context.awsRequestId);
  responseStream.end();
});

export const failsAfterWriting = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('partial');
  await new Promise((r) => setTimeout(r, 10));
  throw new TypeError('broke mid-stream');
});

export const failsAtOnce = awslambda.streamifyResponse(async () => {
  throw new RangeError('nothing written');
});

export const prelude = awslambda.streamifyResponse(async (event, responseStream) => {
  const http = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { 'x-flint': 'yes' },
    cookies: ['a=1'],
  });
  if (event.body) {
    http.write(event.body);
  }
  http.end();
});

export const tooLate = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('x');
  try {
    responseStream.setContentType('text/html');
  } catch (e) {
    responseStream.write(` ${e.name}: ${e.message}`);
  }
  responseStream.write({ object: 'as JSON' });
  responseStream.end();
});

const MB = 1024 * 1024;
const block = (i) => Buffer.alloc(64 * 1024, 97 + (i % 26));

export const large = awslambda.streamifyResponse(async (event, responseStream) => {
  let drains = 0;
  let i = 0;
  for (; i < (4 * MB) / (64 * 1024); i++) {
    if (!responseStream.write(block(i))) {
      drains++;
      await once(responseStream, 'drain');
    }
  }
  async function* rest() {
    for (; i < (event.mb * MB) / (64 * 1024); i++) yield block(i);
  }
  await pipelineAsync(Readable.from(rest()), responseStream);
  console.log(`drains=${drains} hwm=${responseStream.writableHighWaterMark}`);
}, { highWaterMark: 32 * 1024 });

export const endsLater = awslambda.streamifyResponse(async (event, responseStream) => {
  pipeline(Readable.from((async function* () {
    await new Promise((r) => setTimeout(r, 30));
    yield 'piped ';
    yield 'later';
  })()), responseStream, () => {});
});

export const neverEnds = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('unfinished');
});

export const neverSettles = awslambda.streamifyResponse(async () => new Promise(() => {}));

export const throwsLater = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('before ');
  setTimeout(() => { throw new EvalError('uncaught'); }, 5);
  await new Promise((r) => setTimeout(r, 60_000));
});

export const lingers = awslambda.streamifyResponse(async (event, responseStream, context) => {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => fs.writeFileSync(event.mark, ''), event.ms);
  responseStream.end('done');
});

export const sourceFails = awslambda.streamifyResponse(async (event, responseStream) => {
  await pipelineAsync(Readable.from((async function* () {
    yield 'some ';
    throw new SyntaxError('bad source');
  })()), responseStream);
});
"#;

fn streaming(handler: &str) -> Option<Function> {
    let launch = launch_of(RUNTIME)?;
    Some(Function::start(
        &launch,
        &format!("app.{handler}"),
        &[("app.mjs", STREAMING)],
        &[],
    ))
}

fn header<'a>(post: &'a support::Post, name: &str) -> Option<&'a str> {
    post.headers.get(name).map(String::as_str)
}

/// The error document of a stream's `Lambda-Runtime-Function-Error-Body` trailer.
fn trailer_error(post: &support::Post) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = post
        .trailers
        .get("lambda-runtime-function-error-body")
        .unwrap_or_else(|| panic!("no error body trailer: {post:?}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    serde_json::from_slice(&raw).expect("json")
}

#[test]
fn node_streaming_chunks_reach_the_runtime_api_before_the_handler_finishes() {
    let Some(f) = streaming("waits") else {
        return;
    };
    let go = f.task_path().join("go");
    let event = serde_json::json!({ "go": go }).to_string();
    f.api.push(Invocation::json("s1", &event));
    // The first write arrives while the handler waits for the test's signal.
    let chunks = f.api.wait_chunks(1, Duration::from_secs(20));
    assert_eq!(chunks.concat(), b"first ");
    assert_eq!(f.api.post_count(), 0, "the stream must still be open");
    std::fs::write(&go, "").expect("signal");
    let post = f.api.wait_posts(1, Duration::from_secs(20))[0].clone();
    assert_eq!(post.kind, PostKind::Response("s1".into()));
    assert_eq!(
        header(&post, "lambda-runtime-function-response-mode"),
        Some("streaming")
    );
    assert_eq!(header(&post, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&post, "content-type"), Some("text/plain"));
    assert_eq!(post.body, b"first s1");
    assert!(post.trailers.is_empty(), "{:?}", post.trailers);
    // The environment goes on serving, on the same connection.
    std::fs::remove_file(&go).expect("reset");
    f.api.push(Invocation::json("s2", &event));
    f.api.wait_chunks(2, Duration::from_secs(20));
    std::fs::write(&go, "").expect("signal");
    assert_eq!(
        f.api.wait_posts(2, Duration::from_secs(20))[1].body,
        b"first s2"
    );
    assert_eq!(f.api.connections(), 1);
}

#[test]
fn node_streaming_error_after_a_write_ends_the_stream_with_error_trailers() {
    let Some(f) = streaming("failsAfterWriting") else {
        return;
    };
    let post = f.invoke("e1", "{}");
    assert_eq!(post.kind, PostKind::Response("e1".into()));
    assert_eq!(post.body, b"partial");
    assert_eq!(
        post.trailers
            .get("lambda-runtime-function-error-type")
            .map(String::as_str),
        Some("TypeError")
    );
    let error = trailer_error(&post);
    assert_eq!(error["errorType"], "TypeError");
    assert_eq!(error["errorMessage"], "broke mid-stream");
    assert_eq!(error["trace"][0], "TypeError: broke mid-stream");
    assert!(f
        .stdout_with("\te1\tERROR\tInvoke Error ")
        .contains("\te1\tERROR\tInvoke Error "));
    assert_eq!(f.invoke("e2", "{}").body, b"partial");
}

#[test]
fn node_streaming_error_before_any_write_is_an_empty_stream_with_error_trailers() {
    let Some(f) = streaming("failsAtOnce") else {
        return;
    };
    let post = f.invoke("e1", "{}");
    assert_eq!(post.kind, PostKind::Response("e1".into()));
    assert_eq!(
        header(&post, "lambda-runtime-function-response-mode"),
        Some("streaming")
    );
    assert!(post.body.is_empty());
    assert_eq!(trailer_error(&post)["errorType"], "RangeError");
    assert_eq!(trailer_error(&post)["errorMessage"], "nothing written");
}

#[test]
fn node_http_response_stream_sends_the_prelude_before_the_body() {
    let Some(f) = streaming("prelude") else {
        return;
    };
    let post = f.invoke("p1", r#"{"body": "hello"}"#);
    assert_eq!(
        header(&post, "content-type"),
        Some("application/vnd.awslambda.http-integration-response")
    );
    let prelude = br#"{"statusCode":201,"headers":{"x-flint":"yes"},"cookies":["a=1"]}"#;
    let mut expected = prelude.to_vec();
    expected.extend_from_slice(&[0; 8]);
    assert_eq!(post.body, [expected.as_slice(), b"hello"].concat());
    // Ended without a write, the prelude still goes (AWS's client drops it: its issue #97).
    assert_eq!(f.invoke("p2", "{}").body, expected);
}

#[test]
fn node_streaming_content_type_is_fixed_by_the_first_write_and_objects_go_as_json() {
    let Some(f) = streaming("tooLate") else {
        return;
    };
    let post = f.invoke("t1", "{}");
    assert_eq!(
        header(&post, "content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        String::from_utf8_lossy(&post.body),
        r#"x Runtime.InvalidStreamingOperation: Cannot set content-type, too late.{"object":"as JSON"}"#
    );
}

#[test]
fn node_streaming_respects_backpressure_and_pipes_a_large_body() {
    let Some(f) = streaming("large") else {
        return;
    };
    let mb = 8;
    let post = f.invoke("big", &format!(r#"{{"mb": {mb}}}"#));
    assert!(post.trailers.is_empty(), "{:?}", post.trailers);
    assert_eq!(post.body.len(), mb * 1024 * 1024);
    for (i, block) in post.body.chunks(64 * 1024).enumerate() {
        let expected = b'a' + (i % 26) as u8;
        assert!(block.iter().all(|&b| b == expected), "block {i}");
    }
    let out = f.stdout_with("drains=");
    let line = out
        .lines()
        .find(|l| l.contains("drains="))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.ends_with("hwm=32768"), "{line}");
    assert!(
        !line.contains("drains=0 "),
        "write() never asked to wait: {line}"
    );
}

#[test]
fn node_streaming_invocation_ends_when_the_stream_does_after_the_handler_returned() {
    let Some(f) = streaming("endsLater") else {
        return;
    };
    let post = f.invoke("l1", "{}");
    assert_eq!(post.body, b"piped later");
    assert!(post.trailers.is_empty(), "{:?}", post.trailers);
}

#[test]
fn node_streaming_handler_that_never_ends_its_stream_fails_when_the_loop_empties() {
    let Some(f) = streaming("neverEnds") else {
        return;
    };
    let post = f.invoke("n1", "{}");
    assert_eq!(post.body, b"unfinished");
    let error = trailer_error(&post);
    assert_eq!(error["errorType"], "string");
    assert_eq!(error["errorMessage"], "Response stream is not finished.");
    let Some(f) = streaming("neverSettles") else {
        return;
    };
    let post = f.invoke("n2", "{}");
    assert_eq!(trailer_error(&post)["errorType"], "Runtime.NodeJsExit");
}

#[test]
fn node_streaming_takes_the_next_event_once_the_loop_empties_unless_told_not_to() {
    let Some(f) = streaming("lingers") else {
        return;
    };
    let wait_for_next = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while f.api.nexts() < n {
            assert!(Instant::now() < deadline, "no /next number {n}");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let mark = f.task_path().join("timer-fired");
    let event = |wait: bool, ms: u64| {
        serde_json::json!({ "wait": wait, "ms": ms, "mark": mark }).to_string()
    };
    // Waiting (the default): the response is whole at once, the next /next after the timer.
    assert_eq!(f.invoke("w1", &event(true, 100)).body, b"done");
    wait_for_next(2);
    assert!(mark.exists(), "/next came before the event loop emptied");
    std::fs::remove_file(&mark).expect("reset");
    // Not waiting: the next /next while the (long) timer is still pending.
    assert_eq!(f.invoke("w2", &event(false, 10_000)).body, b"done");
    wait_for_next(3);
    assert!(!mark.exists());
}

#[test]
fn node_streaming_uncaught_exception_ends_the_stream_with_it_and_exits() {
    let Some(mut f) = streaming("throwsLater") else {
        return;
    };
    let post = f.invoke("u1", "{}");
    assert_eq!(post.body, b"before ");
    assert_eq!(trailer_error(&post)["errorType"], "EvalError");
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(129));
}

#[test]
fn node_streaming_pipeline_whose_source_fails_ends_with_the_sources_error() {
    let Some(f) = streaming("sourceFails") else {
        return;
    };
    let post = f.invoke("f1", "{}");
    assert_eq!(post.body, b"some ");
    assert_eq!(trailer_error(&post)["errorType"], "SyntaxError");
    assert_eq!(trailer_error(&post)["errorMessage"], "bad source");
    assert_eq!(f.invoke("f2", "{}").body, b"some ");
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
