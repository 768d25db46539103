//! The Ruby bootstrap run by the host's ruby (not sandboxed) against a fake Runtime API: the
//! headers Lambda sends (identity, client context, trace id), chunked `/next` bodies, raw IO
//! results and errors must look as AWS's Ruby runtime (aws_lambda_ric) makes them.

mod support;

use support::{launch_of, Function, Invocation, PostKind};

const RUNTIME: &str = "ruby3.3";

const FUNCTION: &str = r#"
require 'stringio'
def handler(event:, context:)
  {
    'event' => event,
    'identity' => context.identity,
    'client_context' => context.client_context,
    'trace' => ENV['_X_AMZN_TRACE_ID'],
    'arn' => context.invoked_function_arn,
  }
end
def raw(event:, context:)
  StringIO.new('not json')
end
def fails(event:, context:)
  raise TypeError, 'wrong type'
end
"#;

#[test]
fn ruby_context_carries_lambdas_headers_and_the_trace_id_is_per_invoke() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(
        &launch,
        "function.handler",
        &[("function.rb", FUNCTION)],
        &[],
    );
    let mut inv = Invocation::json("req-1", r#"{"a": [1, {"b": null}]}"#);
    inv.headers.push((
        "Lambda-Runtime-Cognito-Identity".into(),
        r#"{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}"#.into(),
    ));
    inv.headers.push((
        "Lambda-Runtime-Client-Context".into(),
        r#"{"custom":{"k":"v"}}"#.into(),
    ));
    inv.headers.push((
        "Lambda-Runtime-Trace-Id".into(),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into(),
    ));
    let post = f.invoke_with(inv);
    assert_eq!(post.kind, PostKind::Response("req-1".into()));
    let body = post.json();
    assert_eq!(body["event"], serde_json::json!({"a": [1, {"b": null}]}));
    assert_eq!(
        body["identity"],
        serde_json::json!({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"})
    );
    assert_eq!(
        body["client_context"],
        serde_json::json!({"custom": {"k": "v"}})
    );
    assert_eq!(
        body["trace"],
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    );
    // The next invoke's own trace id (the fake API's default) replaces it.
    let body = f.invoke("req-2", "{}").json();
    assert!(body["trace"]
        .as_str()
        .is_some_and(|t| t.starts_with("Root=1-5bef4de7-")));
    assert_eq!(body["identity"], serde_json::Value::Null);
}

#[test]
fn ruby_io_results_are_sent_raw_and_errors_name_the_class() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "function.raw", &[("function.rb", FUNCTION)], &[]);
    let post = f.invoke("req-1", "{}");
    assert_eq!(post.kind, PostKind::Response("req-1".into()));
    assert_eq!(post.body, b"not json");
    assert_eq!(
        post.headers.get("content-type").map(String::as_str),
        Some("application/unknown")
    );

    let f = Function::start(&launch, "function.fails", &[("function.rb", FUNCTION)], &[]);
    let post = f.invoke("req-1", "{}");
    assert_eq!(post.kind, PostKind::Error("req-1".into()));
    assert_eq!(
        post.headers
            .get("lambda-runtime-function-error-type")
            .map(String::as_str),
        Some("Function<TypeError>")
    );
    let body = post.json();
    assert_eq!(body["errorMessage"], "wrong type");
    assert_eq!(body["errorType"], "Function<TypeError>");
    let trace = body["stackTrace"].as_array().expect("stackTrace");
    assert!(trace[0]
        .as_str()
        .is_some_and(|s| s.contains("function.rb:") && s.contains("fails")));
}

#[test]
fn ruby_malformed_handler_is_an_init_error() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "nodot", &[("function.rb", FUNCTION)], &[]);
    let posts = f.api.wait_posts(1, std::time::Duration::from_secs(10));
    assert_eq!(posts[0].kind, PostKind::InitError);
    let body = posts[0].json();
    assert_eq!(body["errorType"], "Init<ArgumentError>");
    assert!(body["errorMessage"]
        .as_str()
        .is_some_and(|m| m.starts_with("Invalid handler")));
}
