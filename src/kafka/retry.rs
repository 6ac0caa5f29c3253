//! Trying again until a deadline: the one loop behind every request weir
//! repeats on its own connections (connecting, describing a topic,
//! InitProducerId, joining a group, a coordinator's requests), with the
//! Java client's backoff (KIP-580): exponential, capped, with jitter.
//!
//! An attempt says whether its failure is worth another try
//! ([`Failure::Retriable`]) or final ([`Failure::Fatal`]). [`Retry::run`]
//! ends at once on a final one, and gives up with the last retriable one
//! when the next wait would reach the deadline: a caller is never told
//! "timed out" before its deadline while a try could still have been made
//! in time, nor kept past it by a wait. Waits are on tokio's clock, so
//! tests drive the loop with `tokio::time::pause()`.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

/// Exponential backoff, capped, with jitter, as the Java client's
/// `ExponentialBackoff`: the `n`th wait in a row is `initial * 2^(n-1)`,
/// at most `max`, spread by `jitter` either way and capped at `max` again
/// (so waits at the cap fall in `[max * (1 - jitter), max]`). The jitter
/// keeps clients that failed together (a broker restarting under a group)
/// from all trying again at the same instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    /// The fraction each wait is spread by either way.
    jitter: f64,
}

impl Backoff {
    /// The Java client's defaults: `retry.backoff.ms` 100 ms,
    /// `retry.backoff.max.ms` 1000 ms (KIP-580), and its fixed jitter of
    /// 20 % (`CommonClientConfigs.RETRY_BACKOFF_JITTER`).
    pub(crate) const KAFKA: Self = Self::new(Duration::from_millis(100), Duration::from_secs(1));

    /// Waits from `initial`, doubling up to `max`, with the Java client's
    /// 20 % jitter.
    pub(crate) const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: 0.2,
        }
    }

    /// The wait after `failures` failures in a row (1 for the first).
    fn delay(&self, failures: u32) -> Duration {
        self.delay_at(failures, unit())
    }

    /// [`delay`](Self::delay) for the uniform draw `unit` in `[0, 1)`.
    fn delay_at(&self, failures: u32, unit: f64) -> Duration {
        // Past 2^31 every initial wait is beyond any cap.
        let doublings = failures.saturating_sub(1).min(31);
        let exponential = self.initial.saturating_mul(1 << doublings).min(self.max);
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit;
        // Whole milliseconds, as the Java client counts them.
        let millis = (exponential.as_millis() as f64 * factor).round() as u64;
        Duration::from_millis(millis).min(self.max)
    }
}

/// A uniform draw in `[0, 1)`. Each `RandomState` gets new keys from std's
/// per-thread random seed, so hashing the same value through a new one is
/// a new draw: random enough to spread retries, and no crate for it.
fn unit() -> f64 {
    let bits = RandomState::new().hash_one(0_u8);
    // The top 53 bits, the precision of an f64.
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

/// An attempt's failure: worth another try, or final. The two may have
/// types of their own: a failure that will be tried again can carry only
/// what a log line says about it (`R`), a final one the error the caller
/// returns (`E`).
#[derive(Debug)]
pub(crate) enum Failure<E, R = E> {
    /// Waiting and trying again may help (a broker restarting, a
    /// coordinator moving, a leader being elected).
    Retriable(R),
    /// Trying again cannot help (a refusal, a failed login).
    Fatal(E),
}

/// An error raised with `?` inside an attempt is final.
impl<E, R> From<E> for Failure<E, R> {
    fn from(error: E) -> Self {
        Self::Fatal(error)
    }
}

/// Why [`Retry::run`] gave up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RetryError<E, R = E> {
    /// The next wait would have reached the deadline; the last attempt's
    /// failure.
    Deadline(R),
    /// An attempt failed for good.
    Fatal(E),
}

impl<E> RetryError<E> {
    /// The error, whichever way the attempts ended.
    pub(crate) fn into_inner(self) -> E {
        match self {
            Self::Deadline(e) | Self::Fatal(e) => e,
        }
    }
}

/// One attempt's future, boxed so that it is `Send` whatever it borrows.
/// An async closure borrowing the caller would be simpler to write, but
/// the compiler cannot then prove a spawned caller's future `Send` (the
/// member's heartbeat task: "implementation of `Send` is not general
/// enough"); hence the attempt gets what it borrows as `state`.
pub(crate) type Attempt<'a, T, E, R = E> =
    Pin<Box<dyn Future<Output = Result<T, Failure<E, R>>> + Send + 'a>>;

/// Attempts repeated until one succeeds, one fails for good, or the
/// deadline leaves no time for another wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    deadline: Instant,
    backoff: Backoff,
}

impl Retry {
    /// Tries until `deadline`, waiting as the Java client does
    /// ([`Backoff::KAFKA`]).
    pub(crate) fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            backoff: Backoff::KAFKA,
        }
    }

    /// Waits by `backoff` instead.
    pub(crate) fn with_backoff(self, backoff: Backoff) -> Self {
        Self { backoff, ..self }
    }

    /// Calls `attempt` with `state` (what the attempts borrow: the
    /// caller, and whatever else they need) and the attempt's number (1
    /// for the first) until it succeeds, fails for good, or the wait
    /// before the next would reach the deadline. An attempt in progress is
    /// not cut off at the deadline: it bounds its own requests.
    ///
    /// # Errors
    ///
    /// [`RetryError::Fatal`] with a final failure, at once;
    /// [`RetryError::Deadline`] with the last retriable one.
    pub(crate) async fn run<S: ?Sized, T, E, R>(
        self,
        state: &mut S,
        attempt: impl for<'a> FnMut(&'a mut S, u32) -> Attempt<'a, T, E, R>,
    ) -> Result<T, RetryError<E, R>> {
        self.run_with(state, attempt, |_, _| {}).await
    }

    /// As [`run`](Self::run), calling `before_wait` with each retriable
    /// failure and the wait after it, only when another attempt follows
    /// (for a log line that says so).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub(crate) async fn run_with<S: ?Sized, T, E, R>(
        self,
        state: &mut S,
        mut attempt: impl for<'a> FnMut(&'a mut S, u32) -> Attempt<'a, T, E, R>,
        mut before_wait: impl FnMut(&R, Duration),
    ) -> Result<T, RetryError<E, R>> {
        let mut failures: u32 = 0;
        loop {
            let last = match attempt(state, failures.saturating_add(1)).await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(e)) => return Err(RetryError::Fatal(e)),
                Err(Failure::Retriable(r)) => r,
            };
            failures = failures.saturating_add(1);
            let wait = self.backoff.delay(failures);
            if Instant::now() + wait >= self.deadline {
                return Err(RetryError::Deadline(last));
            }
            before_wait(&last, wait);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_from_its_start_to_its_cap() {
        // A draw of 0.5 is the middle of the jitter: no spread.
        let waits: Vec<_> = (1..=7).map(|n| Backoff::KAFKA.delay_at(n, 0.5)).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1000, 1000, 1000].map(|ms| ms * MS)
        );
        // No overflow however long the failures go on.
        for n in [32, 33, 64, 1000, u32::MAX] {
            assert_eq!(Backoff::KAFKA.delay_at(n, 0.5), 1000 * MS, "failure {n}");
        }
        let short = Backoff::new(20 * MS, 500 * MS);
        let waits: Vec<_> = (1..=7).map(|n| short.delay_at(n, 0.5)).collect();
        assert_eq!(waits, [20, 40, 80, 160, 320, 500, 500].map(|ms| ms * MS));
    }

    #[test]
    fn jitter_spreads_a_wait_by_a_fifth_either_way_under_the_cap() {
        let b = Backoff::KAFKA;
        assert_eq!(b.delay_at(1, 0.0), 80 * MS);
        assert_eq!(b.delay_at(3, 0.0), 320 * MS);
        assert_eq!(b.delay_at(3, 0.99), 478 * MS);
        assert_eq!(b.delay_at(4, 0.25), 720 * MS);
        assert_eq!(b.delay_at(4, 0.99), 957 * MS);
        // At the cap, jitter only shortens a wait, as in the Java client.
        assert_eq!(b.delay_at(5, 0.0), 800 * MS);
        assert_eq!(b.delay_at(5, 0.99), 1000 * MS);
        // Jittered past the cap: the cap.
        let b = Backoff::new(100 * MS, 900 * MS);
        assert_eq!(b.delay_at(4, 0.99), 900 * MS);
    }

    #[test]
    fn random_waits_stay_within_the_jitter_and_differ() {
        let b = Backoff::KAFKA;
        for n in 1..=6 {
            let nominal = b.delay_at(n, 0.5);
            let waits: Vec<_> = (0..500).map(|_| b.delay(n)).collect();
            for w in &waits {
                assert!(*w >= nominal.mul_f64(0.8), "failure {n}: {w:?}");
                assert!(*w <= nominal.mul_f64(1.2).min(b.max), "failure {n}: {w:?}");
            }
            // Whole milliseconds: 41 possible waits around 100 ms.
            let mut distinct = waits.clone();
            distinct.sort();
            distinct.dedup();
            assert!(distinct.len() > 20, "failure {n}: {distinct:?}");
        }
        let draws: Vec<f64> = (0..10_000).map(|_| unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        // Both halves drawn about equally: not stuck at one end.
        let low = draws.iter().filter(|&&u| u < 0.5).count();
        assert!((4_500..5_500).contains(&low), "{low} of 10000 below 0.5");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_with_the_last_failure() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        let mut attempts = 0;
        let mut waits = Vec::new();
        let result: Result<(), _> = Retry::until(deadline)
            .run_with(
                &mut attempts,
                |attempts, n| {
                    Box::pin(async move {
                        *attempts += 1;
                        assert_eq!(n, *attempts);
                        Err(Failure::<&str, u32>::Retriable(n))
                    })
                },
                |&n, wait| waits.push((n, wait)),
            )
            .await;
        let given_up = start.elapsed();
        assert_eq!(result, Err(RetryError::Deadline(attempts)));
        // 100, 200, 400, 800 ms, then 1 s waits: the next wait would pass
        // the deadline only within its last second.
        assert!(given_up < Duration::from_secs(5), "{given_up:?}");
        assert!(given_up >= Duration::from_secs(4), "{given_up:?}");
        assert!((6..=9).contains(&attempts), "{attempts} attempts");
        // A wait is reported only when an attempt follows it.
        assert_eq!(waits.len() as u32, attempts - 1);
        assert_eq!(waits.iter().map(|w| w.1).sum::<Duration>(), given_up);
        assert!(waits.iter().enumerate().all(|(i, w)| w.0 == i as u32 + 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_failure_ends_at_once() {
        let start = Instant::now();
        let mut tried = Vec::new();
        let result: Result<(), _> = Retry::until(start + Duration::from_secs(60))
            .run(&mut tried, |tried, n| {
                Box::pin(async move {
                    tried.push(Instant::now());
                    if n < 3 {
                        Err(Failure::Retriable("not yet"))
                    } else {
                        Err(Failure::Fatal("refused"))
                    }
                })
            })
            .await;
        assert_eq!(result, Err(RetryError::Fatal("refused")));
        assert_eq!(tried.len(), 3);
        // No wait after it.
        assert_eq!(tried.last(), Some(&Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_raised_with_the_question_mark_is_final() {
        let mut attempts = 0;
        let result: Result<(), RetryError<String>> =
            Retry::until(Instant::now() + Duration::from_secs(60))
                .run(&mut attempts, |attempts, _| {
                    Box::pin(async move {
                        *attempts += 1;
                        Err("refused".to_owned())?;
                        Err(Failure::Retriable("again".to_owned()))
                    })
                })
                .await;
        assert_eq!(
            result.map_err(RetryError::into_inner),
            Err("refused".to_owned())
        );
        assert_eq!(attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_after_failures_with_growing_waits_between() {
        let start = Instant::now();
        let mut tried = Vec::new();
        let result = Retry::until(start + Duration::from_secs(60))
            .run(&mut tried, |tried, n| {
                Box::pin(async move {
                    tried.push(Instant::now());
                    if n <= 4 {
                        Err(Failure::<(), ()>::Retriable(()))
                    } else {
                        Ok(n * 10)
                    }
                })
            })
            .await;
        assert_eq!(result, Ok(50));
        assert_eq!(tried.len(), 5);
        assert_eq!(tried[0], start, "the first attempt waits for nothing");
        for (i, nominal) in [100, 200, 400, 800].into_iter().enumerate() {
            let gap = tried[i + 1] - tried[i];
            let nominal = nominal * MS;
            assert!(
                gap >= nominal.mul_f64(0.8) && gap <= nominal.mul_f64(1.2),
                "wait {}: {gap:?}",
                i + 1
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn its_own_backoff_is_used() {
        let start = Instant::now();
        let mut tried = Vec::new();
        let result: Result<(), _> = Retry::until(start + Duration::from_millis(100))
            .with_backoff(Backoff::new(20 * MS, 500 * MS))
            .run(&mut tried, |tried, _| {
                Box::pin(async move {
                    tried.push(Instant::now() - start);
                    Err(Failure::<(), ()>::Retriable(()))
                })
            })
            .await;
        assert_eq!(result, Err(RetryError::Deadline(())));
        // 20 and 40 ms (±20 %) fit before 100 ms, 80 ms does not.
        assert_eq!(tried.len(), 3, "{tried:?}");
        assert!(tried[1] >= 16 * MS && tried[1] <= 24 * MS, "{tried:?}");
    }
}
