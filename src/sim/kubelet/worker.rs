//! When the kubelet's pod worker syncs a pod again on its own (pkg/kubelet/pod_workers.go
//! `completeWork`, v1.32): after a sync that failed, `wait.Jitter(backOffPeriod, 0.5)`; after one
//! that succeeded, `wait.Jitter(resyncInterval, 0.5)`.
//!
//! In 1.32 a pod whose container is in CrashLoopBackOff counts as failed: the back-off result is
//! meant to be dropped (pkg/kubelet/kubelet.go `SyncPod`, "Do not return error if the only
//! failures were pods in backoff"), but the `ConfigPodSandbox` result that kuberuntime_manager.go
//! `SyncPod` always adds carries no error, so the check never matches (kubernetes#123602, fixed
//! in 1.35). Such a pod is therefore synced every 10–15 s, each sync a `BackOff` event.
//!
//! `wait.Jitter` draws from Go's global random source; here the draw is a hash of the pod and
//! the number of draws so far, so a run replays the same way every time.

use std::time::Duration;

/// The pause after a failed sync (pkg/kubelet/kubelet.go `backOffPeriod = 10s`, passed to
/// `newPodWorkers` as the worker's `backOffPeriod`).
pub(super) const BACKOFF_PERIOD: Duration = Duration::from_secs(10);
/// The pause after a successful sync: the kubelet's `--sync-frequency` (`syncFrequency`,
/// default 1m; pkg/kubelet/apis/config/v1beta1/defaults.go), the worker's `resyncInterval`.
pub(super) const RESYNC_INTERVAL: Duration = Duration::from_secs(60);
/// `workerBackOffPeriodJitterFactor` and `workerResyncIntervalJitterFactor`
/// (pkg/kubelet/pod_workers.go), both 0.5: as a fraction, numerator over denominator.
const JITTER_FACTOR: (u64, u64) = (1, 2);

/// `wait.Jitter(base, 0.5)` (k8s.io/apimachinery/pkg/util/wait/jitter.go: `duration +
/// rand.Float64()*maxFactor*duration`): somewhere in `[base, 1.5 × base)`, chosen by the
/// `draw`-th value of a generator seeded from `seed`.
pub(super) fn jitter(base: Duration, seed: &str, draw: u64) -> Duration {
    let span = u64::try_from(base.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(JITTER_FACTOR.0)
        / JITTER_FACTOR.1;
    if span == 0 {
        return base;
    }
    let x = splitmix64(fnv1a64(seed.as_bytes()) ^ splitmix64(draw));
    base + Duration::from_millis(x % span)
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One SplitMix64 step: a well-mixed 64-bit value from any input.
const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_the_period_above_it_and_repeats_per_seed() {
        let draws: Vec<Duration> = (0..500)
            .map(|n| jitter(BACKOFF_PERIOD, "uid-1", n))
            .collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= BACKOFF_PERIOD && *d < Duration::from_secs(15))
        );
        // Spread over the whole range, not stuck at one end.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(11_000)));
        assert!(draws.iter().any(|d| *d >= Duration::from_millis(14_000)));
        let again: Vec<Duration> = (0..500)
            .map(|n| jitter(BACKOFF_PERIOD, "uid-1", n))
            .collect();
        assert_eq!(draws, again);
        let other: Vec<Duration> = (0..500)
            .map(|n| jitter(BACKOFF_PERIOD, "uid-2", n))
            .collect();
        assert_ne!(draws, other);
        let resync = jitter(RESYNC_INTERVAL, "uid-1", 0);
        assert!(resync >= RESYNC_INTERVAL && resync < Duration::from_secs(90));
    }
}
