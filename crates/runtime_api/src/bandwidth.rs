//! AWS's bandwidth limit on a streamed response: the first 6 MB go out as fast as the reader
//! takes them, the rest at most 2 MB/s. Applied where a streamed chunk leaves the Runtime API
//! (`server::post_stream`), so every reader — InvokeWithResponseStream and function URLs — sees
//! the same pace, and the bounded chunk channel slows the function's writes as AWS's limit does.

use tokio::time::{Duration, Instant};

/// Bytes of a streamed response sent uncapped.
pub const UNCAPPED_STREAM_BYTES: u64 = 6 * 1024 * 1024;

/// The rate past [`UNCAPPED_STREAM_BYTES`], in bytes per second.
pub const CAPPED_STREAM_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;

/// Paces one streamed response (a token bucket without burst allowance past the first 6 MB).
#[derive(Debug, Default)]
pub struct StreamPacer {
    sent: u64,
    /// When the capped bytes charged so far have drained at the capped rate.
    drained_at: Option<Instant>,
}

impl StreamPacer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until a chunk of `len` bytes may go out. Costs nothing (no clock read) while the
    /// response is within its first 6 MB.
    pub async fn pace(&mut self, len: usize) {
        let before = self.sent;
        self.sent = self.sent.saturating_add(len as u64);
        if self.sent <= UNCAPPED_STREAM_BYTES {
            return;
        }
        let capped = self.sent - before.max(UNCAPPED_STREAM_BYTES);
        let now = Instant::now();
        // Time not used by a slow writer is not saved up for a later burst.
        let start = self.drained_at.map_or(now, |t| t.max(now));
        tokio::time::sleep_until(start).await;
        let cost = Duration::from_secs_f64(capped as f64 / CAPPED_STREAM_BYTES_PER_SECOND as f64);
        self.drained_at = Some(start + cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 64 * 1024;

    async fn send(pacer: &mut StreamPacer, bytes: u64) {
        for _ in 0..bytes / CHUNK as u64 {
            pacer.pace(CHUNK).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_six_megabytes_go_out_at_once() {
        let mut pacer = StreamPacer::new();
        let t0 = Instant::now();
        send(&mut pacer, UNCAPPED_STREAM_BYTES).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn past_six_megabytes_a_stream_gets_two_megabytes_a_second() {
        let mut pacer = StreamPacer::new();
        send(&mut pacer, UNCAPPED_STREAM_BYTES).await;
        let t0 = Instant::now();
        // 4 MB more: two seconds, less the last chunk's own share (it leaves when the one
        // before it has drained).
        send(&mut pacer, 4 * 1024 * 1024).await;
        let last = Duration::from_secs_f64(CHUNK as f64 / CAPPED_STREAM_BYTES_PER_SECOND as f64);
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(2) - last - Duration::from_millis(1)
                && took <= Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_by_the_writer_is_not_saved_up_for_a_burst() {
        let mut pacer = StreamPacer::new();
        send(&mut pacer, UNCAPPED_STREAM_BYTES + 1024 * 1024).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        send(&mut pacer, 2 * 1024 * 1024).await;
        assert!(
            t0.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );
    }
}
