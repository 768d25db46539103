//! The error payloads Lambda returns (with `FunctionError: Unhandled`) when a function did not
//! answer normally, worded as AWS words them (see the recordings in /work/shared/aws-recordings).

use bytes::Bytes;
use flint_sandbox::ExitInfo;

pub(crate) const UNHANDLED: &str = "Unhandled";

pub(crate) const SANDBOX_TIMEDOUT: &str = "Sandbox.Timedout";
pub(crate) const RUNTIME_EXIT_ERROR: &str = "Runtime.ExitError";
pub(crate) const RUNTIME_OUT_OF_MEMORY: &str = "Runtime.OutOfMemory";
pub(crate) const RUNTIME_INVALID_ENTRYPOINT: &str = "Runtime.InvalidEntrypoint";
pub(crate) const FUNCTION_RESPONSE_SIZE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

fn payload(error_type: &str, message: &str) -> Bytes {
    // errorType first, as Lambda's own payloads for platform errors.
    let mut out = String::with_capacity(message.len() + error_type.len() + 32);
    out.push_str("{\"errorType\":");
    out.push_str(&serde_json::Value::from(error_type).to_string());
    out.push_str(",\"errorMessage\":");
    out.push_str(&serde_json::Value::from(message).to_string());
    out.push('}');
    Bytes::from(out)
}

pub(crate) const EXTENSION_CRASH: &str = "Extension.Crash";
pub(crate) const EXTENSION_INIT_ERROR: &str = "Extension.InitError";

/// An extension that failed during Init: `Extension.Crash` when its process ended, else the
/// type it posted to `init/error` (the REPORT line's type is then `Extension.InitError`).
pub(crate) fn extension_failed(
    request_id: &str,
    f: &flint_runtime_api::ExtensionFailure,
) -> (Bytes, &'static str) {
    if f.error_type == EXTENSION_CRASH {
        (
            payload(
                EXTENSION_CRASH,
                &format!("RequestId: {request_id} Error: {}", f.detail),
            ),
            EXTENSION_CRASH,
        )
    } else {
        (
            payload(
                &f.error_type,
                &format!(
                    "RequestId: {request_id} Error: extension {} failed to initialize: {}",
                    f.name, f.error_type
                ),
            ),
            EXTENSION_INIT_ERROR,
        )
    }
}

pub(crate) fn timed_out(request_id: &str, timeout_secs: u32) -> Bytes {
    payload(
        SANDBOX_TIMEDOUT,
        &format!("RequestId: {request_id} Error: Task timed out after {timeout_secs}.00 seconds"),
    )
}

/// `Runtime.ExitError` (or `Runtime.OutOfMemory`) for a runtime that died during an invoke.
pub(crate) fn exited(request_id: &str, exit: Option<ExitInfo>) -> (Bytes, &'static str) {
    let reason = exit_reason(exit);
    let error_type = if exit.is_some_and(|e| e.oom_killed) {
        RUNTIME_OUT_OF_MEMORY
    } else {
        RUNTIME_EXIT_ERROR
    };
    (
        payload(
            error_type,
            &format!("RequestId: {request_id} Error: {reason}"),
        ),
        error_type,
    )
}

/// How Lambda describes a runtime's end (Go's `os.ProcessState` wording).
pub(crate) fn exit_reason(exit: Option<ExitInfo>) -> String {
    match exit {
        Some(ExitInfo {
            signal: Some(sig), ..
        }) => {
            format!("Runtime exited with error: signal: {}", signal_name(sig))
        }
        Some(ExitInfo { code: Some(0), .. }) | None => {
            "Runtime exited without providing a reason".into()
        }
        Some(ExitInfo {
            code: Some(code), ..
        }) => format!("Runtime exited with error: exit status {code}"),
        Some(ExitInfo {
            code: None,
            signal: None,
            ..
        }) => "Runtime exited without providing a reason".into(),
    }
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "hangup",
        libc::SIGINT => "interrupt",
        libc::SIGQUIT => "quit",
        libc::SIGILL => "illegal instruction",
        libc::SIGTRAP => "trace/breakpoint trap",
        libc::SIGABRT => "aborted",
        libc::SIGBUS => "bus error",
        libc::SIGFPE => "floating point exception",
        libc::SIGKILL => "killed",
        libc::SIGUSR1 => "user defined signal 1",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGUSR2 => "user defined signal 2",
        libc::SIGPIPE => "broken pipe",
        libc::SIGALRM => "alarm clock",
        libc::SIGTERM => "terminated",
        libc::SIGXCPU => "CPU time limit exceeded",
        libc::SIGXFSZ => "file size limit exceeded",
        libc::SIGSYS => "bad system call",
        other => return format!("signal {other}"),
    };
    name.to_string()
}

pub(crate) fn invalid_entrypoint(request_id: &str, detail: &str) -> Bytes {
    payload(
        RUNTIME_INVALID_ENTRYPOINT,
        &format!("RequestId: {request_id} Error: {detail}"),
    )
}

pub(crate) fn response_too_large() -> Bytes {
    // This one has errorMessage first in AWS's payload.
    Bytes::from(format!(
        "{{\"errorMessage\":\"Response payload size exceeded maximum allowed payload size ({} bytes).\",\"errorType\":\"{}\"}}",
        flint_runtime_api::MAX_RESPONSE_BYTES,
        FUNCTION_RESPONSE_SIZE_TOO_LARGE
    ))
}

/// The payload of an `/error` or `/init/error` post: the body as posted, or one built from the
/// error-type header when the runtime sent no body.
pub(crate) fn reported(error_type: Option<&str>, body: Bytes) -> Bytes {
    if !body.is_empty() {
        return body;
    }
    payload(error_type.unwrap_or(UNHANDLED), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(b: &Bytes) -> serde_json::Value {
        serde_json::from_slice(b).unwrap_or_default()
    }

    #[test]
    fn timeout_payload_matches_aws() {
        let v = json(&timed_out("r1", 3));
        assert_eq!(v["errorType"], "Sandbox.Timedout");
        assert_eq!(
            v["errorMessage"],
            "RequestId: r1 Error: Task timed out after 3.00 seconds"
        );
    }

    #[test]
    fn exit_payloads_match_aws() {
        let e = |code, signal, oom| {
            Some(ExitInfo {
                code,
                signal,
                oom_killed: oom,
            })
        };
        let (p, t) = exited("r", e(Some(1), None, false));
        assert_eq!(t, "Runtime.ExitError");
        assert_eq!(
            json(&p)["errorMessage"],
            "RequestId: r Error: Runtime exited with error: exit status 1"
        );
        let (p, _) = exited("r", e(None, Some(9), false));
        assert_eq!(
            json(&p)["errorMessage"],
            "RequestId: r Error: Runtime exited with error: signal: killed"
        );
        let (p, _) = exited("r", e(Some(0), None, false));
        assert_eq!(
            json(&p)["errorMessage"],
            "RequestId: r Error: Runtime exited without providing a reason"
        );
        let (p, t) = exited("r", e(None, Some(9), true));
        assert_eq!(t, "Runtime.OutOfMemory");
        assert_eq!(json(&p)["errorType"], "Runtime.OutOfMemory");
    }

    #[test]
    fn too_large_payload_matches_aws() {
        let v = json(&response_too_large());
        assert_eq!(v["errorType"], "Function.ResponseSizeTooLarge");
        assert_eq!(
            v["errorMessage"],
            "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
        );
    }

    #[test]
    fn empty_error_report_is_built_from_the_header() {
        let v = json(&reported(Some("Runtime.Custom"), Bytes::new()));
        assert_eq!(v["errorType"], "Runtime.Custom");
        assert_eq!(
            reported(None, Bytes::from_static(b"x")),
            Bytes::from_static(b"x")
        );
    }
}
