//! Recursive loop detection: how many times one chain of events has invoked a function.
//!
//! AWS counts a function's invocations by the event that caused them in the X-Ray trace header
//! (`X-Amzn-Trace-Id`), which the AWS SDKs inside a function copy from `_X_AMZN_TRACE_ID` onto
//! every call they make (an SQS message keeps it as `AWSTraceHeader`). Each invocation through
//! Invoke, the async queue or an event source mapping raises the function's count in the
//! header's `Lineage` field (`Lineage=<hash>:<count>|<hash>:<count>…`, one entry per function);
//! once a function's count would pass [`MAX_INVOCATIONS`], Lambda stops the invocation
//! (`RecursiveInvocationException`; an async event goes to its DLQ or on-failure destination),
//! unless the function's recursion config says `Allow`.
//!
//! The hash is Flint's own (32-bit FNV-1a of the unqualified function ARN, in hex): AWS does not
//! document its own, and only Flint reads it back.

use std::fmt::Write as _;

/// How many times one chain of events may invoke a function (AWS stops the 17th).
pub const MAX_INVOCATIONS: u32 = 16;

const LINEAGE: &str = "Lineage=";

/// The trace header an invocation of `function_arn` carries, and how many times the chain it
/// belongs to has now invoked that function (this invocation included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub trace_header: String,
    pub count: u32,
}

impl Hop {
    /// Whether this invocation goes past the limit (a loop, if the function does not allow it).
    pub fn is_loop(&self) -> bool {
        self.count > MAX_INVOCATIONS
    }
}

/// The header an invocation of `function_arn` carries: `incoming` (or a fresh trace when there
/// is none) with the function's count in `Lineage` raised by one. `function_arn` may be
/// qualified: every version and alias of a function counts as the function.
pub fn next_hop(incoming: Option<&str>, function_arn: &str) -> Hop {
    // On every synchronous invoke: one output string, the parts borrowed from the input.
    let key = function_key(function_arn);
    let fresh;
    let header = match incoming {
        Some(h) if h.starts_with("Root=") => h,
        _ => {
            fresh = flint_runtime_api::new_trace_id();
            fresh.as_str()
        }
    };
    let mut out = String::with_capacity(header.len() + LINEAGE.len() + key.len() + 8);
    let mut entries: Vec<(&str, u32)> = Vec::new();
    for part in header.split(';').filter(|p| !p.is_empty()) {
        match part.strip_prefix(LINEAGE) {
            Some(lineage) => entries.extend(lineage.split('|').filter_map(|e| {
                let (hash, count) = e.split_once(':')?;
                Some((hash, count.parse().ok()?))
            })),
            None => {
                out.push_str(part);
                out.push(';');
            }
        }
    }
    let count = match entries.iter_mut().find(|(hash, _)| *hash == key) {
        Some((_, c)) => {
            *c = c.saturating_add(1);
            *c
        }
        None => {
            entries.push((&key, 1));
            1
        }
    };
    out.push_str(LINEAGE);
    for (i, (hash, c)) in entries.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        let _ = write!(out, "{hash}:{c}");
    }
    Hop {
        trace_header: out,
        count,
    }
}

/// How many times the chain `header` belongs to has invoked `function_arn` (0: never, or no
/// lineage).
pub fn count(header: Option<&str>, function_arn: &str) -> u32 {
    let Some(header) = header else {
        return 0;
    };
    let key = function_key(function_arn);
    header
        .split(';')
        .filter_map(|p| p.strip_prefix(LINEAGE))
        .flat_map(|l| l.split('|'))
        .filter_map(|e| e.split_once(':'))
        .find(|(hash, _)| *hash == key)
        .and_then(|(_, c)| c.parse().ok())
        .unwrap_or(0)
}

/// The function's key in `Lineage`: a hash of its unqualified ARN.
fn function_key(function_arn: &str) -> String {
    let unqualified: [&str; 3] = match function_arn.split_once(":function:") {
        Some((prefix, rest)) => [prefix, ":function:", rest.split(':').next().unwrap_or(rest)],
        None => [function_arn, "", ""],
    };
    let mut hash: u32 = 0x811c_9dc5;
    for b in unqualified.iter().flat_map(|p| p.bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "arn:aws:lambda:us-east-1:000000000000:function:f";
    const G: &str = "arn:aws:lambda:us-east-1:000000000000:function:g";

    #[test]
    fn a_chain_counts_each_function_separately_and_keeps_the_trace() {
        let first = next_hop(
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"),
            F,
        );
        assert_eq!(first.count, 1);
        assert!(first
            .trace_header
            .starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage="));
        let second = next_hop(Some(&first.trace_header), G);
        assert_eq!(second.count, 1);
        let third = next_hop(Some(&second.trace_header), &format!("{F}:live"));
        assert_eq!(third.count, 2, "a version or alias counts as its function");
        assert_eq!(third.trace_header.matches("Lineage=").count(), 1);
        assert_eq!(third.trace_header.split('|').count(), 2);
    }

    #[test]
    fn the_seventeenth_invocation_is_a_loop() {
        let mut header: Option<String> = None;
        for n in 1..=MAX_INVOCATIONS {
            let hop = next_hop(header.as_deref(), F);
            assert_eq!(hop.count, n);
            assert!(!hop.is_loop());
            header = Some(hop.trace_header);
        }
        assert_eq!(count(header.as_deref(), F), MAX_INVOCATIONS);
        assert_eq!(count(header.as_deref(), G), 0);
        assert!(next_hop(header.as_deref(), F).is_loop());
    }

    #[test]
    fn garbage_is_replaced_by_a_fresh_trace() {
        let hop = next_hop(Some("not a trace"), F);
        assert!(hop.trace_header.starts_with("Root=1-"));
        assert_eq!(hop.count, 1);
        let hop = next_hop(Some("Root=1-a-b;Lineage=zz:notanumber|:|x"), F);
        assert_eq!(hop.count, 1);
    }
}
