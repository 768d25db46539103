//! Flint's Java runtime client run by the host's JVM (not sandboxed) through its launcher script
//! against a fake Runtime API. The handlers are JDK methods (no javac needed here; the end-to-end
//! tests in tests/test_runtime_java.py compile real functions): named-method handlers, JSON in
//! and out, errors and init errors as AWS's Java runtime reports them.

mod support;

use std::time::Duration;
use support::{launch_of, Function, PostKind};

const RUNTIME: &str = "java17";

#[test]
fn java_named_static_methods_get_json_in_and_out() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "java.lang.Integer::parseInt", &[], &[]);
    let post = f.invoke("req-1", r#""41""#);
    assert_eq!(post.kind, PostKind::Response("req-1".into()));
    assert_eq!(post.body, b"41");
    // A JSON number where a String is wanted is coerced, as Jackson does.
    assert_eq!(f.invoke("req-2", "7").body, b"7");

    let f = Function::start(&launch, "java.util.Collections::emptyMap", &[], &[]);
    assert_eq!(f.invoke("req-1", "{}").body, b"{}");
}

#[test]
fn java_exceptions_are_reported_with_their_class_and_frames() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    let f = Function::start(&launch, "java.lang.Integer::parseInt", &[], &[]);
    let post = f.invoke("req-1", r#""not a number""#);
    assert_eq!(post.kind, PostKind::Error("req-1".into()));
    assert_eq!(
        post.headers
            .get("lambda-runtime-function-error-type")
            .map(String::as_str),
        Some("java.lang.NumberFormatException")
    );
    let body = post.json();
    assert_eq!(body["errorType"], "java.lang.NumberFormatException");
    assert_eq!(body["errorMessage"], r#"For input string: "not a number""#);
    let frames: Vec<&str> = body["stackTrace"]
        .as_array()
        .expect("stackTrace")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(
        frames
            .first()
            .is_some_and(|f| f.starts_with("java.lang.NumberFormatException.forInputString(")),
        "{frames:?}"
    );
    assert!(frames.iter().all(|f| !f.contains("flint.")), "{frames:?}");
    // An object where a String is wanted: AWS's Jackson failure shape.
    let body = f.invoke("req-2", r#"{"a": 1}"#).json();
    assert_eq!(
        body["errorMessage"],
        "An error occurred during JSON parsing"
    );
    assert_eq!(body["errorType"], "java.lang.RuntimeException");
    assert_eq!(body["cause"]["errorType"], "java.io.UncheckedIOException");
    // The environment serves on.
    assert_eq!(f.invoke("req-3", r#""5""#).body, b"5");
}

#[test]
fn java_missing_class_and_method_are_init_errors() {
    let Some(launch) = launch_of(RUNTIME) else {
        return;
    };
    for (handler, error_type, message) in [
        (
            "example.Missing",
            "java.lang.ClassNotFoundException",
            "Class not found: example.Missing",
        ),
        (
            "java.lang.Integer::nope",
            "java.lang.NoSuchMethodException",
            "No public method named nope with appropriate method signature found on class \
             java.lang.Integer",
        ),
        (
            "java.lang.Integer",
            "java.lang.Exception",
            "Class java.lang.Integer does not implement RequestHandler with concrete type \
             parameters",
        ),
    ] {
        let f = Function::start(&launch, handler, &[], &[]);
        let posts = f.api.wait_posts(1, Duration::from_secs(20));
        assert_eq!(posts[0].kind, PostKind::InitError, "{handler}");
        assert_eq!(
            posts[0]
                .headers
                .get("lambda-runtime-function-error-type")
                .map(String::as_str),
            Some(error_type)
        );
        let body = posts[0].json();
        assert_eq!(body["errorType"], error_type);
        assert_eq!(body["errorMessage"], message);
    }
}
