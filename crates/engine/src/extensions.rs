//! External extensions and telemetry as the engine sees them: the executables of
//! `/opt/extensions` (from layers) are started before the runtime by a small launcher (a shell
//! script run as the sandbox's program) that waits until each has registered, then execs the
//! runtime, and tells Flint when an extension's process ends; and the platform's telemetry
//! records (`platform.initStart`, `platform.start`, `platform.runtimeDone`, `platform.report`,
//! ...) in AWS's schema.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use flint_runtime_api::{telemetry_event, Category, RuntimeApi};
use flint_runtimes::Launch;
use serde_json::json;

/// AWS's time for external extensions to finish after `SHUTDOWN` (internal ones get no event:
/// they end with the runtime).
pub(crate) const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(2000);

/// The executables directly in `<opt>/extensions`, by name, as Lambda starts them (sorted).
pub(crate) fn discover(opt_dir: Option<&Path>) -> Vec<String> {
    let Some(dir) = opt_dir.map(|d| d.join("extensions")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::metadata(e.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Marks a line of an extension's output: `\x1e<name>\x1e<line>`.
pub(crate) const TAG: u8 = 0x1e;

/// The launcher: starts each extension (reporting its exit to Flint), waits until Flint says
/// every one registered, then execs the runtime. Arguments: count, extension paths, the
/// runtime's program and arguments. Amazon Linux's /bin/sh is bash (so is the sandbox's).
const LAUNCHER: &str = r#"api=$AWS_LAMBDA_RUNTIME_API
host=${api%:*} port=${api##*:}
n=$1; shift
while [ "$n" -gt 0 ]; do
  ext=$1; shift; n=$((n-1))
  (
    # Its output, line by line, tagged with its name for Flint's log reader (`extension` telemetry).
    "$ext" 2>&1 </dev/null | while IFS= read -r line || [ -n "$line" ]; do
      printf '\036%s\036%s\n' "${ext##*/}" "$line"
    done
    code=${PIPESTATUS[0]}
    exec 3<>"/dev/tcp/$host/$port" || exit 0
    printf 'POST /flint/extensions/exited HTTP/1.1\r\nHost: %s\r\nLambda-Extension-Name: %s\r\nFlint-Exit-Code: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$api" "${ext##*/}" "$code" >&3
    read -r _ <&3
  ) </dev/null &
done
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /flint/extensions/launch HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$api" >&3
read -r _ <&3
exec 3<&-
exec "$@"
"#;

/// The launch of a runtime with external extensions `names` started first.
pub(crate) fn with_launcher(launch: Launch, names: &[String]) -> Launch {
    let mut args = vec![
        "-c".to_string(),
        LAUNCHER.to_string(),
        "flint-extensions".to_string(),
        names.len().to_string(),
    ];
    args.extend(names.iter().map(|n| format!("/opt/extensions/{n}")));
    args.push(launch.program.to_string_lossy().into_owned());
    args.extend(launch.args);
    Launch {
        program: "/bin/sh".into(),
        args,
        env: launch.env,
        ro_binds: launch.ro_binds,
        ro_mounts: launch.ro_mounts,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// The events of a finished Init (sent when it ends: the subscribers subscribed during it):
/// `platform.initStart`, one `platform.extension` per extension, `platform.initRuntimeDone`,
/// `platform.initReport`.
pub(crate) fn init_done(
    api: &RuntimeApi,
    spec: &crate::FunctionSpec,
    init_type: &str,
    duration: Duration,
    status: &str,
    error_type: Option<&str>,
) {
    if !api.telemetry_wants(Category::Platform) {
        return;
    }
    let (version, arn) = crate::logs::runtime_version(&spec.runtime, &spec.region);
    api.emit_telemetry(
        Category::Platform,
        telemetry_event(
            "platform.initStart",
            json!({
                "initializationType": init_type,
                "phase": "init",
                "runtimeVersion": version,
                "runtimeVersionArn": arn,
                "functionName": spec.function_name,
                "functionVersion": spec.version,
            }),
        ),
    );
    for e in api.extensions() {
        api.emit_telemetry(
            Category::Platform,
            telemetry_event(
                "platform.extension",
                json!({ "name": e.name, "state": e.state, "events": e.events }),
            ),
        );
    }
    let mut done = json!({ "initializationType": init_type, "phase": "init", "status": status });
    let mut report = json!({
        "initializationType": init_type,
        "phase": "init",
        "status": status,
        "metrics": { "durationMs": ms(duration) },
    });
    if let Some(t) = error_type {
        done["errorType"] = json!(t);
        report["errorType"] = json!(t);
    }
    api.emit_telemetry(
        Category::Platform,
        telemetry_event("platform.initRuntimeDone", done),
    );
    api.emit_telemetry(
        Category::Platform,
        telemetry_event("platform.initReport", report),
    );
}

fn tracing(trace_id: &str) -> serde_json::Value {
    json!({ "type": "X-Amzn-Trace-Id", "value": trace_id })
}

/// `platform.start`.
pub(crate) fn start(api: &RuntimeApi, request_id: &str, version: &str, trace_id: &str) {
    if api.telemetry_wants(Category::Platform) {
        api.emit_telemetry(
            Category::Platform,
            telemetry_event(
                "platform.start",
                json!({ "requestId": request_id, "version": version, "tracing": tracing(trace_id) }),
            ),
        );
    }
}

/// What `platform.runtimeDone` reports of one invocation.
pub(crate) struct RuntimeDone<'a> {
    pub request_id: &'a str,
    pub status: &'a str,
    pub error_type: Option<&'a str>,
    /// When the event was handed to the runtime.
    pub started: std::time::Instant,
    pub duration: Duration,
    pub produced_bytes: usize,
    /// The trace header the function got (empty when not kept).
    pub trace: &'a str,
}

fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `platform.runtimeDone`: the runtime answered (or failed) after `duration`; with AWS's spans
/// `responseLatency` (the event handed over → the response began) and `responseDuration` (the
/// response's transfer) when a response arrived, and the invocation's trace context.
pub(crate) fn runtime_done(api: &RuntimeApi, done: &RuntimeDone<'_>) {
    if !api.telemetry_wants(Category::Platform) {
        return;
    }
    let mut record = json!({
        "requestId": done.request_id,
        "status": done.status,
        "metrics": { "durationMs": ms(done.duration), "producedBytes": done.produced_bytes },
    });
    if let Some(t) = done.error_type {
        record["errorType"] = json!(t);
    }
    if !done.trace.is_empty() {
        record["tracing"] = json!({
            "spanId": format!("{:016x}", rand::random::<u64>()),
            "type": "X-Amzn-Trace-Id",
            "value": done.trace,
        });
    }
    if let Some(began) = api.take_response_began() {
        let now = std::time::Instant::now();
        let wall_now = std::time::SystemTime::now();
        let latency = began.saturating_duration_since(done.started);
        let transfer = now.saturating_duration_since(began);
        let wall_start = wall_now - now.saturating_duration_since(done.started);
        record["spans"] = json!([
            { "name": "responseLatency", "start": rfc3339(wall_start), "durationMs": ms(latency) },
            { "name": "responseDuration", "start": rfc3339(wall_start + latency), "durationMs": ms(transfer) },
        ]);
    }
    api.emit_telemetry(
        Category::Platform,
        telemetry_event("platform.runtimeDone", record),
    );
}

/// `platform.report`, with the REPORT line's numbers.
pub(crate) fn report(api: &RuntimeApi, request_id: &str, r: &crate::logs::Report) {
    if !api.telemetry_wants(Category::Platform) {
        return;
    }
    let mut metrics = json!({
        "durationMs": ms(r.duration),
        "billedDurationMs": r.billed_ms,
        "memorySizeMB": r.memory_mb,
        "maxMemoryUsedMB": r.max_memory_used_mb,
    });
    if let Some(init) = r.init {
        metrics["initDurationMs"] = json!(ms(init));
    }
    let mut record = json!({
        "requestId": request_id,
        "status": r.status.unwrap_or("success"),
        "metrics": metrics,
    });
    if let Some(t) = r.error_type {
        record["errorType"] = json!(t);
    }
    api.emit_telemetry(
        Category::Platform,
        telemetry_event("platform.report", record),
    );
}

/// The platform's log line for each registered extension after Init.
pub(crate) fn extension_lines(api: &RuntimeApi, json_format: bool) -> String {
    let mut out = String::new();
    for e in api.extensions() {
        if json_format {
            out.push_str(&String::from_utf8_lossy(&telemetry_event(
                "platform.extension",
                json!({ "name": e.name, "state": e.state, "events": e.events }),
            )));
            out.push('\n');
        } else {
            out.push_str(&format!(
                "EXTENSION\tName: {}\tState: {}\tEvents: [{}]\n",
                e.name,
                e.state,
                e.events.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_executables_in_opt_extensions_are_extensions() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ext = dir.path().join("extensions");
        std::fs::create_dir(&ext)?;
        for (name, mode) in [("b-agent", 0o755), ("a-agent", 0o755), ("readme", 0o644)] {
            let p = ext.join(name);
            std::fs::write(&p, "#!/bin/sh\n")?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        }
        std::fs::create_dir(ext.join("lib"))?;
        assert_eq!(discover(Some(dir.path())), vec!["a-agent", "b-agent"]);
        assert!(discover(None).is_empty());
        Ok(())
    }

    #[test]
    fn the_launcher_runs_extensions_then_the_runtime() {
        let launch = Launch {
            program: "/var/runtime/bootstrap".into(),
            args: vec!["x".into()],
            env: vec![],
            ro_binds: vec![],
            ro_mounts: vec![],
        };
        let l = with_launcher(launch, &["a".into()]);
        assert_eq!(l.program, Path::new("/bin/sh"));
        assert_eq!(
            &l.args[2..],
            [
                "flint-extensions",
                "1",
                "/opt/extensions/a",
                "/var/runtime/bootstrap",
                "x"
            ]
        );
    }
}
