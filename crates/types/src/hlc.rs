//! Hybrid logical clock (Kulkarni et al.): a timestamp is wall-clock nanoseconds plus a logical
//! counter that orders events within one nanosecond and carries causality across nodes.
//!
//! Invariants: [`Hlc::now`] is strictly increasing on one node; after [`Hlc::update`] with a
//! remote timestamp, every later `now()` is greater than it. The physical clock is injected
//! ([`Clock`]) so tests can drive time deterministically.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// An HLC timestamp. Ordered by `(wall_ns, logical)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    pub wall_ns: u64,
    pub logical: u32,
}

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp { wall_ns: 0, logical: 0 };
    pub const MAX: Timestamp = Timestamp { wall_ns: u64::MAX, logical: u32::MAX };

    pub const fn new(wall_ns: u64, logical: u32) -> Self {
        Timestamp { wall_ns, logical }
    }

    /// The smallest timestamp greater than `self`.
    pub fn next(self) -> Timestamp {
        if self.logical == u32::MAX { Timestamp::new(self.wall_ns + 1, 0) } else { Timestamp::new(self.wall_ns, self.logical + 1) }
    }

    /// `self` moved forward by `nanos` of wall time.
    pub fn add_nanos(self, nanos: u64) -> Timestamp {
        Timestamp::new(self.wall_ns.saturating_add(nanos), self.logical)
    }

    /// `self` moved back by `nanos` of wall time (logical reset), saturating at zero.
    pub fn sub_nanos(self, nanos: u64) -> Timestamp {
        Timestamp::new(self.wall_ns.saturating_sub(nanos), 0)
    }

    /// Parses the `"<wall_ns>.<logical>"` form produced by `Display`.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let (w, l) = s.split_once('.').unwrap_or((s, "0"));
        Some(Timestamp::new(w.parse().ok()?, l.parse().ok()?))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:010}", self.wall_ns, self.logical)
    }
}

/// A source of physical time in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn physical_now_ns(&self) -> u64;
}

/// The machine's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn physical_now_ns(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    }
}

/// A hybrid logical clock over an injected physical clock.
pub struct Hlc {
    clock: Box<dyn Clock>,
    last: Mutex<Timestamp>,
    /// The largest tolerated offset between nodes' clocks, in nanoseconds.
    max_offset_ns: u64,
}

impl Hlc {
    pub fn new(clock: impl Clock, max_offset_ns: u64) -> Self {
        Hlc { clock: Box::new(clock), last: Mutex::new(Timestamp::ZERO), max_offset_ns }
    }

    pub fn system(max_offset_ns: u64) -> Self {
        Self::new(SystemClock, max_offset_ns)
    }

    pub fn max_offset_ns(&self) -> u64 {
        self.max_offset_ns
    }

    /// A timestamp strictly greater than any this clock returned or observed before.
    pub fn now(&self) -> Timestamp {
        let phys = self.clock.physical_now_ns();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let next = if phys > last.wall_ns { Timestamp::new(phys, 0) } else { last.next() };
        *last = next;
        next
    }

    /// Observes a timestamp from elsewhere (a message, an applied write). Later `now()` calls
    /// return greater timestamps. Returns false, and ignores it, when `ts` is further ahead of
    /// our physical clock than the maximum offset: that node's clock (or ours) is broken.
    pub fn update(&self, ts: Timestamp) -> bool {
        let phys = self.clock.physical_now_ns();
        if ts.wall_ns > phys.saturating_add(self.max_offset_ns) {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if ts > *last {
            *last = ts;
        }
        true
    }

    /// The physical clock's reading, without touching the logical clock.
    pub fn physical_now(&self) -> Timestamp {
        Timestamp::new(self.clock.physical_now_ns(), 0)
    }

    /// Advances the clock to at least `ts` without the offset check. Used for timestamps this
    /// node's own replicas committed (they passed the check when they were chosen).
    pub fn forward(&self, ts: Timestamp) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if ts > *last {
            *last = ts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Clone, Default)]
    struct ManualClock(Arc<AtomicU64>);
    impl Clock for ManualClock {
        fn physical_now_ns(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn now_is_strictly_increasing_when_clock_stalls() {
        let c = ManualClock::default();
        c.0.store(100, Ordering::SeqCst);
        let hlc = Hlc::new(c.clone(), 1_000);
        let a = hlc.now();
        let b = hlc.now();
        assert_eq!(a, Timestamp::new(100, 0));
        assert_eq!(b, Timestamp::new(100, 1));
        c.0.store(50, Ordering::SeqCst); // clock goes backwards
        assert_eq!(hlc.now(), Timestamp::new(100, 2));
        c.0.store(200, Ordering::SeqCst);
        assert_eq!(hlc.now(), Timestamp::new(200, 0));
    }

    #[test]
    fn update_carries_causality_and_rejects_far_future() {
        let c = ManualClock::default();
        c.0.store(1_000, Ordering::SeqCst);
        let hlc = Hlc::new(c.clone(), 500);
        assert!(hlc.update(Timestamp::new(1_400, 7)));
        assert_eq!(hlc.now(), Timestamp::new(1_400, 8));
        assert!(!hlc.update(Timestamp::new(10_000, 0)), "beyond max offset");
        assert_eq!(hlc.now(), Timestamp::new(1_400, 9));
    }

    #[test]
    fn display_parse_round_trip_and_order() {
        let t = Timestamp::new(1_700_000_000_000_000_000, 42);
        assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
        assert!(Timestamp::new(1, 5) < Timestamp::new(2, 0));
        assert_eq!(Timestamp::new(3, u32::MAX).next(), Timestamp::new(4, 0));
    }
}
