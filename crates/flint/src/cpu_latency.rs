//! Wake-up latency of idle CPUs while invokes flow. Every warm invoke is a chain of wake-ups
//! (client → Flint → runtime → Flint → client); when a CPU in that chain has gone idle, waking it
//! costs what its idle state costs to leave — on a VM whose idle vCPUs halt (KVM/Firecracker
//! `haltpoll`), about 40 µs per wake-up, several times Flint's own work per invoke. While invokes
//! are flowing, Flint asks the kernel's PM QoS (`/dev/cpu_dma_latency`, the interface tuned's
//! latency-performance profile uses) to keep idle CPUs in states that wake at once, and drops the
//! request after a quiet spell so an idle server costs nothing.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use flint_engine::Engine;

const DEVICE: &str = "/dev/cpu_dma_latency";

/// How often invoke activity is checked.
const PERIOD: Duration = Duration::from_millis(50);

/// The request is dropped after this long without an invoke.
const QUIET: Duration = Duration::from_secs(2);

/// `--cpu-latency-qos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Hold the request while invokes ran in the last 2 s, drop it when idle.
    Auto,
    /// Hold it for as long as Flint runs.
    On,
    /// Never ask.
    Off,
}

/// An open PM QoS request: the kernel honours it for as long as the file stays open.
struct Request(#[allow(dead_code)] File);

impl Request {
    fn open() -> std::io::Result<Self> {
        let mut f = std::fs::OpenOptions::new().write(true).open(DEVICE)?;
        // 0 µs: no idle state that takes time to leave.
        f.write_all(&0i32.to_ne_bytes())?;
        Ok(Self(f))
    }
}

/// Starts the activity watcher (or holds the request for good with `Mode::On`). Returns what
/// the serve banner should say.
pub fn start(mode: Mode, engine: Arc<Engine>) -> String {
    match mode {
        Mode::Off => "cpu latency qos off".into(),
        Mode::On => match Request::open() {
            Ok(req) => {
                // Held until the process exits.
                std::mem::forget(req);
                "cpu latency qos held (0 µs)".into()
            }
            Err(e) => format!("cpu latency qos unavailable ({DEVICE}: {e})"),
        },
        Mode::Auto => {
            // Probe once so the banner tells the truth, then let go until invokes flow.
            if let Err(e) = Request::open() {
                return format!("cpu latency qos unavailable ({DEVICE}: {e})");
            }
            tokio::spawn(watch(engine));
            "cpu latency qos while invoking (0 µs)".into()
        }
    }
}

async fn watch(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = engine.invocations_started();
    let mut last_activity = Instant::now();
    let mut held: Option<Request> = None;
    loop {
        tick.tick().await;
        let now = engine.invocations_started();
        if now != seen {
            seen = now;
            last_activity = Instant::now();
            if held.is_none() {
                match Request::open() {
                    Ok(r) => held = Some(r),
                    Err(e) => {
                        tracing::debug!("cpu latency qos: {e}");
                    }
                }
            }
        } else if held.is_some() && last_activity.elapsed() >= QUIET {
            held = None;
        }
    }
}
