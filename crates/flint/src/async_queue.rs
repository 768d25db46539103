//! `flint async-queue [FUNCTION]`: what the asynchronous queue of a data dir holds, per function —
//! events accepted and not finished, how many of them are waiting for a retry, and when the next
//! one is due. Reads the store (safe while the server runs: SQLite readers do not block it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct AsyncQueueArgs {
    /// Only this function.
    function: Option<String>,
    /// The data directory the server uses.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
}

#[derive(Default)]
struct Depth {
    queued: u64,
    retrying: u64,
    next_due_ms: Option<u64>,
}

pub fn run(args: AsyncQueueArgs) -> anyhow::Result<()> {
    let layout = flint_store::Layout::new(&args.data_dir);
    let store = flint_store::Store::open_layout(&layout)
        .with_context(|| format!("opening the store of {}", args.data_dir.display()))?;
    let mut by_function: BTreeMap<(String, String, String), Depth> = BTreeMap::new();
    for doc in store.list_all(flint_events::ASYNC_EVENT_KIND)? {
        // Loosely: any format has these members (format 0 named the function elsewhere).
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&doc.value) else {
            continue;
        };
        let function = v
            .get("function_name")
            .or_else(|| v.pointer("/function/function_name"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_string();
        if args.function.as_ref().is_some_and(|f| *f != function) {
            continue;
        }
        let d = by_function
            .entry((doc.account.clone(), doc.region.clone(), function))
            .or_default();
        d.queued += 1;
        let attempts = v
            .get("attempts")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let due = v
            .get("due_at_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if attempts > 0 {
            d.retrying += 1;
        }
        d.next_due_ms = Some(d.next_due_ms.map_or(due, |n| n.min(due)));
    }
    println!(
        "{:<14} {:<14} {:<40} {:>8} {:>9} NEXT DUE",
        "ACCOUNT", "REGION", "FUNCTION", "QUEUED", "RETRYING"
    );
    let now = flint_events::async_queue::now_ms();
    for ((account, region, function), d) in by_function {
        let due = match d.next_due_ms {
            Some(ms) if ms > now => format!("in {:.1} s", (ms - now) as f64 / 1000.0),
            _ => "now".to_string(),
        };
        println!(
            "{account:<14} {region:<14} {function:<40} {:>8} {:>9} {due}",
            d.queued, d.retrying
        );
    }
    Ok(())
}
