//! Arithmetic on simulated instants.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// `t + d`, saturating at the largest representable instant.
#[must_use]
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `later - earlier`, zero when `later` is not after `earlier`.
#[must_use]
pub fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// The instant as Kubernetes writes it in object status: RFC 3339, whole seconds, UTC.
#[must_use]
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The earlier of two optional instants.
#[must_use]
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_format() {
        let t: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let u = after(t, Duration::from_millis(90_500));
        assert_eq!(rfc3339(u), "2025-01-01T00:01:30Z");
        assert_eq!(since(u, t), Duration::from_millis(90_500));
        assert_eq!(since(t, u), Duration::ZERO);
        assert_eq!(earliest(Some(u), Some(t)), Some(t));
        assert_eq!(earliest(None, Some(t)), Some(t));
        assert_eq!(
            after(Timestamp::MAX, Duration::from_secs(1)),
            Timestamp::MAX
        );
    }
}
