//! The agent's clock: what "now" is for the records it stamps, the windows
//! its collectors measure and the slots its scheduler waits for.
//!
//! Records are stamped by the system clock (UTC as the host keeps it, NTP
//! steps included), and the scheduler waits on tokio's timer. Tests choose
//! one of two other clocks: a fixed function (records with a known time),
//! or a clock that follows tokio's, so that under `tokio::time::pause` the
//! scheduler runs days of slots in milliseconds and every time it reads
//! agrees with the timer it sleeps on.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A source of the current time. Cheap to copy; every copy reads the same
/// time.
#[derive(Clone, Copy)]
pub struct Clock(Source);

#[derive(Clone, Copy)]
enum Source {
    /// `Utc::now`.
    System,
    /// A function, for tests that need a known time.
    Fn(fn() -> DateTime<Utc>),
    /// `base` plus the time tokio's clock has moved since `start`.
    Tokio {
        base: DateTime<Utc>,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// The system clock. A long-running agent stamps by this one rather
    /// than by a monotonic count from its start: the host's clock is the
    /// one NTP corrects, and the one an RFC 3161 timestamp is compared to.
    pub fn system() -> Self {
        Clock(Source::System)
    }

    /// A clock that reads `now` (tests that need records with a known time).
    pub fn from_fn(now: fn() -> DateTime<Utc>) -> Self {
        Clock(Source::Fn(now))
    }

    /// A clock that reads `base` now and then moves with tokio's clock:
    /// paused, it stands still; advanced, it advances by as much. Call it
    /// inside the runtime whose time it should follow.
    pub fn following_tokio(base: DateTime<Utc>) -> Self {
        Clock(Source::Tokio {
            base,
            start: tokio::time::Instant::now(),
        })
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self.0 {
            Source::System => Utc::now(),
            Source::Fn(now) => now(),
            Source::Tokio { base, start } => {
                let elapsed = chrono::Duration::from_std(start.elapsed())
                    .expect("a test runs for less than 292 years");
                base + elapsed
            }
        }
    }

    /// Sleeps on tokio's timer until `t` by this clock (at once if `t` has
    /// passed).
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        let wait = (t - self.now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Source::System => f.write_str("Clock(system)"),
            Source::Fn(_) => f.write_str("Clock(fn)"),
            Source::Tokio { base, .. } => write!(f, "Clock(tokio from {base})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noon() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_function_clock_reads_its_function() {
        assert_eq!(Clock::from_fn(noon).now(), noon());
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time_only() {
        let clock = Clock::following_tokio(noon());
        assert_eq!(clock.now(), noon());
        tokio::time::advance(Duration::from_secs(3 * 86_400)).await;
        assert_eq!(clock.now(), noon() + chrono::Duration::days(3));
        // Sleeping until a time by this clock takes exactly that long on
        // tokio's timer.
        let slot = clock.now() + chrono::Duration::hours(5);
        clock.sleep_until(slot).await;
        assert_eq!(clock.now(), slot);
        // A time already past does not wait.
        let before = tokio::time::Instant::now();
        clock.sleep_until(noon()).await;
        assert_eq!(tokio::time::Instant::now(), before);
    }
}
