//! The fake Runtime API's own round-trip cost, measured with a Rust "null runtime", so the
//! bootstraps' per-invoke overhead can be read as the difference.

mod support;

use std::time::{Duration, Instant};
use support::{FakeRuntimeApi, Invocation, PostKind};

#[test]
fn null_runtime_round_trip_baseline() {
    let api = FakeRuntimeApi::start();
    support::null_runtime(&api);
    let n = 1000;
    let mut started = Instant::now();
    for i in 0..=n {
        if i == 1 {
            started = Instant::now(); // the first round trip includes the connect
        }
        api.push(Invocation::json(&format!("r{i}"), r#"{"k": "v"}"#));
        let posts = api.wait_posts(i + 1, Duration::from_secs(10));
        assert_eq!(posts[i].kind, PostKind::Response(format!("r{i}")));
        assert_eq!(posts[i].body, br#"{"k": "v"}"#);
    }
    let per = started.elapsed() / n as u32;
    eprintln!(
        "null runtime (Rust): {per:?} per invoke round trip over {n} invokes (fake Runtime API)"
    );
    assert_eq!(api.connections(), 1);
}
