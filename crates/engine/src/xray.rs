//! X-Ray tracing as Lambda does it: the sampling decision in the trace header a function gets
//! (`_X_AMZN_TRACE_ID` / `Lambda-Runtime-Trace-Id`), the function's own segment for a sampled
//! invocation, and the segments functions send to the X-Ray daemon's address (the SDKs'
//! subsegments), kept per function as JSON lines (`Layout::function_traces`, one segment per
//! line, the newest 10 MB and the 10 MB before them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A function's trace file past this size is rotated (the previous one kept as `.1`).
const TRACE_FILE_CAP: u64 = 10 * 1024 * 1024;

/// X-Ray's default sampling rule, which Lambda applies to Active tracing: the first request
/// each second, then 5 % of the others.
#[derive(Debug, Default)]
pub(crate) struct Reservoir {
    second: AtomicU64,
}

impl Reservoir {
    pub(crate) fn sample(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.second.swap(now, Ordering::Relaxed) != now || rand::random::<f64>() < 0.05
    }
}

/// The header the function gets: `incoming` with a sampling decision. An upstream decision
/// (`Sampled=0` or `Sampled=1`) is honoured, as Lambda honours it; otherwise (none, or
/// `Sampled=?`) the function decides (`decide`, asked only then: Active tracing's sampling
/// rule, or no). A header without `Parent` gets one: the id of the function's segment, under
/// which the SDKs inside put their subsegments.
pub(crate) fn with_sampling(incoming: &str, decide: impl FnOnce() -> bool) -> String {
    let mut parts: Vec<&str> = incoming.split(';').filter(|p| !p.is_empty()).collect();
    let decided = parts
        .iter()
        .any(|p| matches!(*p, "Sampled=0" | "Sampled=1"));
    let has_parent = parts.iter().any(|p| p.starts_with("Parent="));
    if decided && has_parent {
        return incoming.to_string();
    }
    let parent = (!has_parent).then(|| format!("Parent={:016x}", rand::random::<u64>()));
    let at = parts
        .iter()
        .position(|p| p.starts_with("Parent="))
        .or_else(|| parts.iter().position(|p| p.starts_with("Root=")))
        .map_or(0, |i| i + 1);
    let mut out: Vec<&str> = Vec::with_capacity(parts.len() + 2);
    if !decided {
        parts.retain(|p| !p.starts_with("Sampled="));
    }
    let at = at.min(parts.len());
    out.extend_from_slice(&parts[..at]);
    if let Some(p) = &parent {
        out.push(p);
    }
    if !decided {
        out.push(if decide() { "Sampled=1" } else { "Sampled=0" });
    }
    out.extend_from_slice(&parts[at..]);
    out.join(";")
}

/// `Root=1-…;Parent=…;Sampled=1` → Some(("1-…", "…")) when sampled.
pub(crate) fn sampled_ids(header: &str) -> Option<(&str, &str)> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = false;
    for part in header.split(';') {
        if let Some(r) = part.strip_prefix("Root=") {
            root = Some(r);
        } else if let Some(p) = part.strip_prefix("Parent=") {
            parent = Some(p);
        } else if part == "Sampled=1" {
            sampled = true;
        }
    }
    sampled.then_some((root?, parent?))
}

/// What Flint knows of one sampled invocation, for the function's segment.
pub(crate) struct Invocation<'a> {
    pub function_name: &'a str,
    pub invoked_arn: &'a str,
    pub request_id: &'a str,
    pub trace_id: &'a str,
    pub segment_id: &'a str,
    pub start: SystemTime,
    pub end: SystemTime,
    pub function_error: bool,
    pub platform_error: bool,
}

/// The `AWS::Lambda::Function` segment of one invocation, as X-Ray shows it.
pub(crate) fn function_segment(i: &Invocation<'_>) -> String {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let mut segment = serde_json::json!({
        "name": i.function_name,
        "id": i.segment_id,
        "trace_id": i.trace_id,
        "start_time": secs(i.start),
        "end_time": secs(i.end),
        "origin": "AWS::Lambda::Function",
        "resource_arn": i.invoked_arn,
        "aws": {"request_id": i.request_id, "function_arn": i.invoked_arn},
    });
    if i.function_error {
        segment["error"] = serde_json::Value::Bool(true);
    }
    if i.platform_error {
        segment["fault"] = serde_json::Value::Bool(true);
    }
    segment.to_string()
}

/// The segment document in one datagram sent to the X-Ray daemon (`{"format":"json",
/// "version":1}` then a newline then the document), if it is one.
pub(crate) fn datagram_document(datagram: &[u8]) -> Option<&[u8]> {
    let newline = datagram.iter().position(|&b| b == b'\n')?;
    let (header, body) = datagram.split_at(newline);
    let header: serde_json::Value = serde_json::from_slice(header).ok()?;
    if header.get("format")?.as_str()? != "json" {
        return None;
    }
    let body = body[1..].trim_ascii();
    (body.first() == Some(&b'{')).then_some(body)
}

/// Where a function's segments go: its trace file and, when configured, the OTLP exporter.
#[derive(Debug)]
pub(crate) struct TraceSink {
    pub path: PathBuf,
    pub origin: std::sync::Arc<crate::otlp::Origin>,
    pub export: Option<std::sync::Arc<crate::otlp::OtlpExporter>>,
}

impl TraceSink {
    /// Keeps one segment document: queued for export (never waiting), appended to the file.
    pub(crate) fn keep(&self, document: &[u8]) -> std::io::Result<()> {
        if let Some(e) = &self.export {
            e.offer(&self.origin, document);
        }
        append(&self.path, document)
    }
}

/// Appends one segment (a JSON document, no newline inside) to a function's trace file.
pub(crate) fn append(path: &Path, document: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= TRACE_FILE_CAP) {
        let mut older = path.as_os_str().to_owned();
        older.push(".1");
        std::fs::rename(path, PathBuf::from(older))?;
    }
    let mut line = Vec::with_capacity(document.len() + 1);
    line.extend_from_slice(document);
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn an_upstream_decision_is_honoured() {
        let h = format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=0");
        assert_eq!(with_sampling(&h, || true), h);
        let h = format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1");
        assert_eq!(with_sampling(&h, || false), h);
    }

    #[test]
    fn without_a_decision_active_tracing_samples() {
        let h = format!("{ROOT};Parent=53995c3f42cd8ad8;Lineage=a:1");
        assert_eq!(
            with_sampling(&h, || true),
            format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1")
        );
        let h = format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=?");
        assert_eq!(
            with_sampling(&h, || false),
            format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=0")
        );
    }

    #[test]
    fn a_header_without_parent_gets_the_functions_segment_id() {
        let out = with_sampling(&format!("{ROOT};Sampled=1"), || false);
        let (root, parent) = sampled_ids(&out).expect("sampled");
        assert_eq!(root, &ROOT["Root=".len()..]);
        assert_eq!(parent.len(), 16);
        assert!(out.starts_with(&format!("{ROOT};Parent=")) && out.ends_with(";Sampled=1"));
        assert_eq!(sampled_ids(&with_sampling(ROOT, || false)), None);
    }

    #[test]
    fn active_tracing_samples_the_first_each_second_then_about_five_percent() {
        let r = Reservoir::default();
        assert!(r.sample(), "the first of its second");
        let later = (0..2000).filter(|_| r.sample()).count();
        // Within one or two seconds: a few firsts plus ~5 % of 2,000 (100 ± a wide margin).
        assert!((40..=200).contains(&later), "{later}");
    }

    #[test]
    fn datagrams_carry_a_header_line_then_the_segment() {
        let d = b"{\"format\": \"json\", \"version\": 1}\n{\"name\":\"s\",\"id\":\"1\"}\n";
        assert_eq!(
            datagram_document(d),
            Some(&b"{\"name\":\"s\",\"id\":\"1\"}"[..])
        );
        assert_eq!(datagram_document(b"no header"), None);
        assert_eq!(datagram_document(b"{\"format\":\"xml\"}\n{}"), None);
    }

    #[test]
    fn the_trace_file_is_rotated_at_its_cap() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("fn").join("segments.jsonl");
        append(&path, b"{\"a\":1}").expect("append");
        append(&path, b"{\"a\":2}").expect("append");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        let big = vec![b'x'; TRACE_FILE_CAP as usize];
        std::fs::write(&path, &big).expect("fill");
        append(&path, b"{}").expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}\n");
        assert!(tmp.path().join("fn").join("segments.jsonl.1").exists());
    }
}
