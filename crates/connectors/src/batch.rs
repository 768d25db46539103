//! How the broker consumers gather a batch, as Lambda's pollers do: wait for the first item as
//! long as it takes, then take more for at most the batching window, up to a count and a size;
//! an item that would overflow the size is kept for the next batch.

use std::future::Future;
use std::time::Duration;

/// A batch's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub items: usize,
    pub bytes: usize,
    pub window: Duration,
}

/// Gathers one batch from `next` (cancel-safe reads), starting with `pending` if any.
pub async fn gather<T, E, F, Fut>(
    pending: &mut Option<T>,
    limits: Limits,
    size: impl Fn(&T) -> usize,
    mut next: F,
) -> Result<Vec<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let first = match pending.take() {
        Some(item) => item,
        None => next().await?,
    };
    let mut bytes = size(&first);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + limits.window;
    while batch.len() < limits.items {
        let item = match tokio::time::timeout_at(deadline, next()).await {
            Ok(item) => item?,
            Err(_) => break,
        };
        let s = size(&item);
        if bytes + s > limits.bytes {
            *pending = Some(item);
            break;
        }
        bytes += s;
        batch.push(item);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn limits(items: usize, bytes: usize, window_ms: u64) -> Limits {
        Limits {
            items,
            bytes,
            window: Duration::from_millis(window_ms),
        }
    }

    async fn batch_of(
        rx: &mut mpsc::UnboundedReceiver<usize>,
        pending: &mut Option<usize>,
        l: Limits,
    ) -> Vec<usize> {
        let rx = &tokio::sync::Mutex::new(rx);
        gather(
            pending,
            l,
            |n| *n,
            || async move { rx.lock().await.recv().await.ok_or("closed") },
        )
        .await
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_ends_at_its_count() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for n in [1, 1, 1, 1] {
            tx.send(n).unwrap();
        }
        let mut pending = None;
        assert_eq!(
            batch_of(&mut rx, &mut pending, limits(3, 100, 500)).await,
            [1, 1, 1]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_ends_when_the_window_after_the_first_item_closes() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(1).unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            late.send(2).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            late.send(3).unwrap();
        });
        let mut pending = None;
        let start = tokio::time::Instant::now();
        assert_eq!(
            batch_of(&mut rx, &mut pending, limits(10, 100, 500)).await,
            [1, 2]
        );
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        assert_eq!(
            batch_of(&mut rx, &mut pending, limits(10, 100, 500)).await,
            [3]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_that_would_overflow_the_size_waits_for_the_next_batch() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for n in [40, 50, 30, 5] {
            tx.send(n).unwrap();
        }
        let mut pending = None;
        let l = limits(10, 100, 500);
        assert_eq!(batch_of(&mut rx, &mut pending, l).await, [40, 50]);
        assert_eq!(pending, Some(30));
        assert_eq!(batch_of(&mut rx, &mut pending, l).await, [30, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_bigger_than_the_limit_goes_alone() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for n in [150, 1] {
            tx.send(n).unwrap();
        }
        let mut pending = None;
        let l = limits(10, 100, 500);
        assert_eq!(batch_of(&mut rx, &mut pending, l).await, [150]);
        assert_eq!(batch_of(&mut rx, &mut pending, l).await, [1]);
    }
}
