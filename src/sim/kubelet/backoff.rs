//! The kubelet's back-off bookkeeping: client-go `util/flowcontrol/backoff.go` with no jitter,
//! as the kubelet configures it (`flowcontrol.NewBackOff(10s, 300s)` for both container
//! restarts and image pulls, pkg/kubelet/kubelet.go).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::sim::behaviour::time::since;

/// First back-off period (pkg/kubelet/kubelet.go `backOffPeriod`).
pub const INITIAL: Duration = Duration::from_secs(10);
/// Longest back-off (pkg/kubelet/kubelet.go `MaxContainerBackOff`, images `MaxImageBackOff`).
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

/// Per-key exponential back-off: 10 s doubling to 5 m, forgotten after 2 × 5 m without news.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    entries: BTreeMap<String, Entry>,
}

/// After twice the maximum without an update the back-off starts over ("consider stable if
/// it's ok for twice the maxDuration").
fn expired(event_time: Timestamp, last_update: Timestamp) -> bool {
    event_time > last_update && since(event_time, last_update) > MAX * 2
}

impl Backoff {
    /// The current period for `key` (zero when unknown).
    #[must_use]
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.backoff)
    }

    /// `Next`: starts the period at 10 s, or doubles it (capped at 5 m); stamps `now`.
    pub fn next(&mut self, key: &str, event_time: Timestamp, now: Timestamp) {
        let backoff = match self.entries.get(key) {
            Some(e) if !expired(event_time, e.last_update) => (e.backoff * 2).min(MAX),
            _ => INITIAL,
        };
        self.entries.insert(
            key.to_owned(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    /// `IsInBackOffSince`: whether less than the period has passed since `event_time`
    /// (container restarts use the finish time of the last exit).
    #[must_use]
    pub fn in_backoff_since(&self, key: &str, event_time: Timestamp, now: Timestamp) -> bool {
        self.entries.get(key).is_some_and(|e| {
            !expired(event_time, e.last_update) && since(now, event_time) < e.backoff
        })
    }

    /// `IsInBackOffSinceUpdate`: whether less than the period has passed since the last
    /// `next` (image pulls).
    #[must_use]
    pub fn in_backoff_since_update(&self, key: &str, now: Timestamp) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| !expired(now, e.last_update) && since(now, e.last_update) < e.backoff)
    }

    /// When the back-off for `key` measured from `event_time` ends.
    #[must_use]
    pub fn until(&self, key: &str, event_time: Timestamp) -> Option<Timestamp> {
        self.entries
            .get(key)
            .map(|e| crate::sim::behaviour::time::after(event_time, e.backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::behaviour::time::after;

    fn t(s: u64) -> Timestamp {
        after(
            "2025-01-01T00:00:00Z".parse().unwrap(),
            Duration::from_secs(s),
        )
    }

    #[test]
    fn doubles_to_five_minutes_and_resets_after_ten() {
        let mut b = Backoff::default();
        assert!(!b.in_backoff_since("k", t(0), t(0)));
        let mut seen = vec![];
        let mut now = 0;
        for _ in 0..7 {
            b.next("k", t(now), t(now));
            seen.push(b.get("k").as_secs());
            now += 1;
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300]);
        assert!(b.in_backoff_since("k", t(now), t(now + 299)));
        assert!(!b.in_backoff_since("k", t(now), t(now + 300)));
        // Ten minutes (twice the cap) after the last update the period starts over.
        let last = now - 1;
        assert!(b.in_backoff_since("k", t(last + 600), t(last + 601)));
        assert!(!b.in_backoff_since("k", t(last + 601), t(last + 602)));
        b.next("k", t(last + 601), t(last + 601));
        assert_eq!(b.get("k"), INITIAL);
    }

    #[test]
    fn since_update_measures_from_the_last_next() {
        let mut b = Backoff::default();
        b.next("img", t(5), t(5));
        assert!(b.in_backoff_since_update("img", t(14)));
        assert!(!b.in_backoff_since_update("img", t(15)));
        assert_eq!(b.until("img", t(5)), Some(t(15)));
    }
}
