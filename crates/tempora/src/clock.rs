//! Time, injected. The only module that reads the system clock.
//!
//! Every request stamps `now` once (in milliseconds since the Unix epoch) and passes it down;
//! the engine never reads a clock itself.

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A source of "now".
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> Millis {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        since_epoch.as_millis() as Millis
    }
}

/// A clock that follows tokio's clock from a fixed start, for tests: under
/// `#[tokio::test(start_paused = true)]` time stands still until the test advances it
/// (`tokio::time::advance`, or sleeping, which then returns at once), so timer and long-poll
/// code runs on exact times with no real waiting.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
    start_ms: Millis,
}

impl TokioClock {
    /// 2026-01-01T00:00:00Z: a fixed start keeps test times reproducible.
    pub const START_MS: Millis = 1_767_225_600_000;

    pub fn new() -> Self {
        TokioClock { start: tokio::time::Instant::now(), start_ms: Self::START_MS }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> Millis {
        self.start_ms + self.start.elapsed().as_millis() as Millis
    }
}

/// Converts between our millisecond times and protobuf `Timestamp`/`Duration`.
pub mod proto {
    use super::Millis;

    pub fn timestamp(ms: Millis) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
    }

    pub fn duration(ms: Millis) -> prost_types::Duration {
        prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }
    }

    /// A protobuf duration in whole milliseconds (rounded up, so 1ns is not 0); `None` → 0.
    pub fn duration_ms(d: Option<&prost_types::Duration>) -> Millis {
        match d {
            None => 0,
            Some(d) => {
                let nanos = d.seconds as i128 * 1_000_000_000 + d.nanos as i128;
                let ms = (nanos + 999_999).div_euclid(1_000_000);
                ms.clamp(i64::MIN as i128, i64::MAX as i128) as Millis
            }
        }
    }

    pub fn timestamp_ms(t: Option<&prost_types::Timestamp>) -> Millis {
        t.map(|t| t.seconds * 1000 + t.nanos as i64 / 1_000_000).unwrap_or(0)
    }
}
