//! Whether the sink's object store answers, and the retries that ride out
//! an outage. Every request of an upload (start, part, complete, abort)
//! goes through [`StoreHealth::retry`]: after `object_store`'s own retries
//! give up, the request is tried again with a growing pause (1 s to 30 s),
//! for as long as `patience` allows (forever for a daemon). Meanwhile
//! writers wait, readers back up behind the bounded channels, nothing is
//! committed and nothing is lost; `/healthz`, `sluice status` ("sink store
//! unreachable") and `sluice_sink_store_failures_in_a_row` say so.
//!
//! The counters live in `telemetry::store_health`.

use super::SinkError;
use std::time::Duration;

pub use crate::telemetry::store_health::StoreHealth;

/// The first pause; it doubles up to 30 times this.
#[cfg(not(test))]
const PAUSE: Duration = Duration::from_secs(1);
#[cfg(test)]
const PAUSE: Duration = Duration::from_millis(1);

/// How long a request is retried after `object_store` gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// A daemon: until the store answers.
    Forever,
    /// `--once` and operator tools: this many more attempts, then the error.
    Attempts(u32),
}

/// Runs `op` until it succeeds, fails with an error that retrying cannot
/// fix, or `patience` runs out; `health` hears of every failure.
pub async fn retry<T, F, Fut>(
    health: &StoreHealth,
    patience: Patience,
    mut op: F,
) -> Result<T, SinkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    let mut attempt: u32 = 0;
    loop {
        match op().await {
            Ok(v) => {
                health.ok();
                return Ok(v);
            }
            Err(e) if !transient(&e) => return Err(e),
            Err(e) => {
                health.failed(&e);
                attempt += 1;
                if let Patience::Attempts(n) = patience
                    && attempt > n
                {
                    return Err(e);
                }
                let pause = (PAUSE * (1 << attempt.min(6).saturating_sub(1))).min(PAUSE * 30);
                if attempt == 1 || attempt.is_power_of_two() {
                    tracing::warn!(error = %e, attempt, pause_ms = pause.as_millis() as u64, "sink store request failed; retrying");
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}
/// Errors a later attempt may not get: the store answered, and the answer
/// is about the object (missing, present, refused), not about reaching it.
fn transient(e: &SinkError) -> bool {
    match e {
        SinkError::Store { source, .. } => !matches!(
            source,
            object_store::Error::NotFound { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotModified { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::InvalidPath { .. }
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_err() -> SinkError {
        SinkError::Store {
            op: "upload part",
            path: "t/x".into(),
            source: object_store::Error::Generic {
                store: "S3",
                source: "connection refused".into(),
            },
        }
    }

    #[test]
    fn retries_until_the_store_answers_and_says_so_meanwhile() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let h = StoreHealth::default();
        let mut calls = 0;
        let seen = std::cell::RefCell::new(Vec::new());
        let v = rt.block_on(retry(&h, Patience::Forever, || {
            calls += 1;
            let n = calls;
            seen.borrow_mut().push(h.unreachable().is_some());
            async move { if n < 4 { Err(unreachable_err()) } else { Ok(n) } }
        }));
        assert_eq!(v.unwrap(), 4);
        // Unreachable from the second failure on, healthy again after.
        assert_eq!(*seen.borrow(), vec![false, false, true, true]);
        assert!(h.unreachable().is_none());
        assert_eq!(h.failures_total(), 3);
    }

    #[test]
    fn gives_up_after_its_attempts_and_never_retries_a_refusal() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let h = StoreHealth::default();
        let mut calls = 0;
        let r: Result<(), _> = rt.block_on(retry(&h, Patience::Attempts(2), || {
            calls += 1;
            async { Err(unreachable_err()) }
        }));
        assert!(r.is_err());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r: Result<(), _> = rt.block_on(retry(&h, Patience::Forever, || {
            calls += 1;
            async {
                Err(SinkError::Store {
                    op: "complete upload",
                    path: "t/x".into(),
                    source: object_store::Error::NotFound {
                        path: "t/x".into(),
                        source: "gone".into(),
                    },
                })
            }
        }));
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
