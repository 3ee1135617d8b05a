//! A simulated cluster that runs on its own and is reached over TCP+TLS like a real one: the
//! target of `relapse sim up` and of the kubeconfig backend's tests.
//!
//! A driver thread owns the control loop: it calls [`SimEngine::advance`] over and over, so
//! controllers, the scheduler and the kubelets act without anyone asking, and writes made through
//! the API are picked up by the next call. Two paces:
//!
//! - [`Pace::Wall`]: simulated time follows wall time (for a person with kubectl);
//! - [`Pace::Fast`]: when nothing is left to do now, the clock jumps to the next timer (at most
//!   [`MAX_JUMP`] ahead), so a back-off of minutes passes in milliseconds of wall time (for
//!   tests). Time also moves when no timer is pending: not every wait in the cluster registers
//!   one (a running program's retry of an unmet requirement does not).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::remote::TimeSource;
use crate::scenario::Scenario;
use crate::sim::TlsEndpoint;
use crate::sim::engine::{EngineConfig, EngineError, SimEngine};
use crate::sim::serve::ServeError;

/// How simulated time relates to wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Simulated time follows wall time.
    Wall,
    /// Simulated time jumps to the next timer whenever nothing is left to do now.
    Fast,
}

impl std::str::FromStr for Pace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wall" => Ok(Self::Wall),
            "fast" => Ok(Self::Fast),
            other => Err(format!("unknown pace `{other}`; expected wall or fast")),
        }
    }
}

/// How often the driver looks for work when the cluster is idle (wall time).
const TICK: Duration = Duration::from_millis(5);
/// At fast pace, how long the store must stay unwritten before the clock may jump: writes a
/// client makes in a burst (the objects of one manifest) land at one simulated instant.
const QUIET: Duration = Duration::from_millis(2);

/// The longest jump of the clock at fast pace, in simulated time.
pub const MAX_JUMP: Duration = Duration::from_secs(10);

/// Errors of a served simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum ServedError {
    /// The cluster could not be built from the scenario's shape.
    #[error("failed to build the simulated cluster")]
    Engine(#[source] EngineError),
    /// The HTTPS endpoint could not be started.
    #[error("failed to serve the simulated cluster")]
    Serve(#[source] ServeError),
    /// The driver thread could not be started.
    #[error("failed to start the simulated cluster's control loop")]
    Thread(#[source] std::io::Error),
}

/// What the driver shares with readers of the simulated clock.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// The simulated instant, in microseconds since the Unix epoch.
    now_us: AtomicI64,
    start: Timestamp,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp::from_microsecond(self.now_us.load(Ordering::Acquire)).unwrap_or(self.start)
    }
}

/// A simulated cluster served on `127.0.0.1` over HTTPS, its control loop running in the
/// background. Dropping it stops the loop and the server.
pub struct ServedSim {
    engine: Arc<Mutex<SimEngine>>,
    endpoint: TlsEndpoint,
    shared: Arc<Shared>,
    driver: Option<JoinHandle<()>>,
    pace: Pace,
}

impl fmt::Debug for ServedSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedSim")
            .field("url", &self.endpoint.url)
            .field("pace", &self.pace)
            .finish_non_exhaustive()
    }
}

impl ServedSim {
    /// Builds a cluster from `config`, serves it and starts its control loop at `pace`.
    /// Must be called inside a tokio runtime (the server runs on it).
    ///
    /// # Errors
    /// When the cluster cannot be built, the endpoint cannot be bound or the thread not started.
    pub async fn start(config: EngineConfig, pace: Pace) -> Result<Self, ServedError> {
        let engine = SimEngine::new(config).map_err(ServedError::Engine)?;
        let api = engine.cluster().api().clone();
        let endpoint = crate::sim::serve::serve_tls(api)
            .await
            .map_err(ServedError::Serve)?;
        let start = engine.start();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            now_us: AtomicI64::new(start.as_microsecond()),
            start,
            failure: Mutex::new(None),
        });
        let engine = Arc::new(Mutex::new(engine));
        let driver = {
            let engine = engine.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("relapse-sim-driver".to_owned())
                .spawn(move || drive(&engine, &shared, pace))
                .map_err(ServedError::Thread)?
        };
        Ok(Self {
            engine,
            endpoint,
            shared,
            driver: Some(driver),
            pace,
        })
    }

    /// A cluster shaped like `scenario`'s `cluster:` section, running its `images:` behaviours
    /// (with `map_images` applied to them first, e.g. to rename the namespaces they name).
    ///
    /// # Errors
    /// See [`Self::start`].
    pub async fn for_scenario(
        scenario: &Scenario,
        pace: Pace,
        map_images: impl FnOnce(
            std::collections::BTreeMap<String, crate::scenario::ImageBehaviour>,
        )
            -> std::collections::BTreeMap<String, crate::scenario::ImageBehaviour>,
    ) -> Result<Self, ServedError> {
        let config = EngineConfig::new(
            scenario.cluster.clone(),
            map_images(scenario.images.clone()),
        )
        .map_err(ServedError::Engine)?;
        Self::start(config, pace).await
    }

    /// The HTTPS endpoint (URL, CA, token).
    #[must_use]
    pub fn endpoint(&self) -> &TlsEndpoint {
        &self.endpoint
    }

    /// A kubeconfig reaching the cluster (it carries the token: write it with mode 0600).
    ///
    /// # Errors
    /// Fails only if YAML rendering fails.
    pub fn kubeconfig_yaml(&self) -> Result<String, ServeError> {
        self.endpoint.kubeconfig_yaml()
    }

    /// The engine, for tests that look below the API.
    #[must_use]
    pub fn engine(&self) -> &Arc<Mutex<SimEngine>> {
        &self.engine
    }

    /// The pace the control loop runs at.
    #[must_use]
    pub const fn pace(&self) -> Pace {
        self.pace
    }

    /// The simulated clock, as a time source for a cluster client ([`super::remote`]).
    #[must_use]
    pub fn clock(&self) -> SimTime {
        SimTime {
            shared: self.shared.clone(),
            origin: self.shared.now(),
        }
    }

    /// Why the control loop stopped, if it failed (a cluster that never settles).
    #[must_use]
    pub fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ServedSim {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(driver) = self.driver.take() {
            // One engine step is bounded (the engine gives up after its round limit).
            let _ = driver.join();
        }
    }
}

/// The control loop.
fn drive(engine: &Mutex<SimEngine>, shared: &Shared, pace: Pace) {
    let wall_start = Instant::now();
    let mut last_rv = None;
    let mut quiet_since = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        let step = {
            let mut engine = engine.lock().unwrap_or_else(PoisonError::into_inner);
            let result = match pace {
                Pace::Wall => {
                    let target =
                        crate::sim::behaviour::time::after(engine.start(), wall_start.elapsed());
                    engine.advance(target).map(|()| engine.now() < target)
                }
                Pace::Fast => fast_step(&mut engine, &mut last_rv, &mut quiet_since),
            };
            shared
                .now_us
                .store(engine.now().as_microsecond(), Ordering::Release);
            result
        };
        match step {
            // More to do right away.
            Ok(true) => {}
            Ok(false) => std::thread::sleep(TICK),
            Err(e) => {
                tracing::error!(error = %e, "the simulated cluster's control loop stopped");
                *shared
                    .failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(super::error_chain(&e));
                return;
            }
        }
    }
}

/// One step at fast pace; returns whether there is more to do at once.
fn fast_step(
    engine: &mut SimEngine,
    last_rv: &mut Option<u64>,
    quiet_since: &mut Instant,
) -> Result<bool, EngineError> {
    if engine.settle()? {
        return Ok(true);
    }
    // Nothing to do now. Jump only once clients have stopped writing for a moment.
    let rv = engine.store().resource_version();
    if *last_rv != Some(rv) {
        *last_rv = Some(rv);
        *quiet_since = Instant::now();
        return Ok(false);
    }
    if quiet_since.elapsed() < QUIET {
        return Ok(false);
    }
    let limit = crate::sim::behaviour::time::after(engine.now(), MAX_JUMP);
    let target = engine.next_wake().map_or(limit, |t| t.min(limit));
    engine.advance(target)?;
    Ok(true)
}

/// The simulated clock of a [`ServedSim`], read without stopping its control loop.
#[derive(Debug, Clone)]
pub struct SimTime {
    shared: Arc<Shared>,
    origin: Timestamp,
}

impl TimeSource for SimTime {
    fn elapsed(&self) -> Duration {
        crate::sim::behaviour::time::since(self.shared.now(), self.origin)
    }

    fn timestamp(&self) -> Timestamp {
        self.shared.now()
    }

    fn poll_interval(&self) -> Duration {
        TICK
    }

    fn is_wall(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;

    async fn client_for(sim: &ServedSim) -> kube::Client {
        let yaml = sim.kubeconfig_yaml().unwrap();
        let kc: kube::config::Kubeconfig =
            serde_json::from_value(crate::yaml::value(&yaml).unwrap()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fast_pace_runs_controllers_and_jumps_over_back_off() {
        let config = EngineConfig::new(Default::default(), Default::default()).unwrap();
        let sim = ServedSim::start(config, Pace::Fast).await.unwrap();
        let client = client_for(&sim).await;
        let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), "default");
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }))
        .unwrap();
        deployments
            .create(&kube::api::PostParams::default(), &d)
            .await
            .unwrap();
        // Nobody calls advance: the background loop makes the Deployment available.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = deployments.get("web").await.unwrap();
            if d.status.and_then(|s| s.ready_replicas) == Some(1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the Deployment never became ready"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(sim.failure().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wall_pace_follows_wall_time() {
        let config = EngineConfig::new(Default::default(), Default::default()).unwrap();
        // Taken before the cluster starts its clock, so a busy machine cannot put the
        // simulated clock ahead of this one.
        let wall = Instant::now();
        let sim = ServedSim::start(config, Pace::Wall).await.unwrap();
        let clock = sim.clock();
        let deadline = wall + Duration::from_secs(60);
        while clock.elapsed() == Duration::ZERO {
            assert!(Instant::now() < deadline, "simulated time never moved");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Never ahead of wall time: no jumps to timers at this pace.
        let simulated = clock.elapsed();
        assert!(simulated <= wall.elapsed(), "{simulated:?}");
    }

    #[test]
    fn paces_parse() {
        assert_eq!("wall".parse::<Pace>(), Ok(Pace::Wall));
        assert_eq!("fast".parse::<Pace>(), Ok(Pace::Fast));
        assert!("slow".parse::<Pace>().is_err());
    }
}
