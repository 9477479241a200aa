//! Time as Dermis stores it (milliseconds since the Unix epoch, in a BIGINT) and shows it
//! (RFC 3339), read through a [`Clock`] so that simulations and tests run the real code on a
//! [`ManualClock`].
//!
//! Every domain service takes a [`SharedClock`] when it is built and reads time only through it.
//! [`now_ms`] is the system clock for the few places with nothing to inject into (ids, which
//! need uniqueness rather than a controllable time).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where a component reads the time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch, now.
    fn now_ms(&self) -> i64;
}

/// A clock shared by the components of one application.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: simulations and tests run the real code on it.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock showing `ms`.
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self { now: AtomicI64::new(ms) })
    }

    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.now.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward (or back, with a negative `ms`); returns the new time.
    pub fn advance(&self, ms: i64) -> i64 {
        self.now.fetch_add(ms, Ordering::SeqCst) + ms
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the Unix epoch on the system clock. Domain code reads a [`Clock`] instead.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats stored milliseconds as an RFC 3339 UTC timestamp with millisecond precision.
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000);
        let shared: SharedClock = clock.clone();
        assert_eq!(shared.now_ms(), 1_000);
        assert_eq!(clock.advance(250), 1_250);
        assert_eq!(shared.now_ms(), 1_250);
        clock.set(5);
        assert_eq!(shared.now_ms(), 5);
        assert!(system().now_ms() > 1_700_000_000_000);
    }
}
