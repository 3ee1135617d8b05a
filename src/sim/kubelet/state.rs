//! One container's state on the node as a single state machine: the state the container
//! status reports (`waiting`, `running`, `terminated`), the data that is only legal in each
//! state, and the one transition function every change goes through (after kube-runtime's
//! `watcher::State` and its single `step`).
//!
//! Each variant carries what `status.containerStatuses[]` shows for it, so the status is a
//! rendering of the state alone: `state` is the variant, `lastState` is the termination it
//! carries and `restartCount` is kept beside it (pkg/kubelet/kubelet_pods.go
//! `convertToAPIContainerStatuses`).

use std::time::Duration;

use jiff::Timestamp;

use super::image::{ImageRef, PullOutcome};
use super::probe::{ProbeKind, ProbeState};
use crate::sim::behaviour::Program;
use crate::sim::behaviour::time::after;

/// 128 + SIGKILL.
const SIGKILL_EXIT: i32 = 137;

/// Why a container is waiting: every reason the simulated kubelet reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitingReason {
    /// Not started yet, in a pod without init containers.
    ContainerCreating,
    /// Not started yet, in a pod with init containers (init containers included).
    PodInitializing,
    /// The last image pull failed.
    ErrImagePull,
    /// Pulls of the image are backing off after a failure.
    ImagePullBackOff,
    /// The image is not on the node and the pull policy is `Never`.
    ErrImageNeverPull,
    /// The container's configuration (its environment) could not be resolved.
    CreateContainerConfigError,
    /// The container exited and its restart is backing off.
    CrashLoopBackOff,
}

impl WaitingReason {
    /// The text the kubelet reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            // pkg/kubelet/kubelet_pods.go, the "Container state reason list".
            Self::ContainerCreating => "ContainerCreating",
            Self::PodInitializing => "PodInitializing",
            // pkg/kubelet/images/types.go `ErrImagePull`, `ErrImagePullBackOff`,
            // `ErrImageNeverPull`.
            Self::ErrImagePull => "ErrImagePull",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::ErrImageNeverPull => "ErrImageNeverPull",
            // pkg/kubelet/kuberuntime/kuberuntime_container.go `ErrCreateContainerConfig`.
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            // pkg/kubelet/container/sync_result.go `ErrCrashLoopBackOff`.
            Self::CrashLoopBackOff => "CrashLoopBackOff",
        }
    }

    /// Whether a failed start (the sync result's error) reports this reason: every reason but
    /// the two a container has before its first start and the restart back-off, which has its
    /// own input.
    const fn is_start_error(self) -> bool {
        !matches!(
            self,
            Self::ContainerCreating | Self::PodInitializing | Self::CrashLoopBackOff
        )
    }
}

/// Why a container terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TerminatedReason {
    /// It exited 0.
    Completed,
    /// It exited with any other code, or was killed by a signal.
    Error,
    /// The kernel's OOM killer killed it.
    OomKilled,
}

impl TerminatedReason {
    /// containerd's reason for an exited container (pkg/cri/server/container_status.go
    /// `toCRIContainerStatus`): `Completed` for 0, else `Error`.
    pub const fn of_exit(code: i32) -> Self {
        if code == 0 {
            Self::Completed
        } else {
            Self::Error
        }
    }

    /// The text containerd reports (pkg/cri/server/helpers.go `completeExitReason`,
    /// `errorExitReason`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "Completed",
            Self::Error => "Error",
            // pkg/cri/server/helpers.go `oomExitReason`; the exit handler sets it when the
            // task's cgroup saw an OOM kill (pkg/cri/server/events.go `handleContainerExit`).
            Self::OomKilled => "OOMKilled",
        }
    }
}

/// One run of a container that has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Termination {
    pub exit_code: i32,
    pub reason: TerminatedReason,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub id: String,
    pub image: ImageRef,
}

impl Termination {
    fn of(run: &Run, exit_code: i32, finished_at: Timestamp) -> Self {
        Self {
            exit_code,
            reason: TerminatedReason::of_exit(exit_code),
            started_at: run.started_at,
            finished_at,
            id: run.id.clone(),
            image: run.image.clone(),
        }
    }
}

/// The run that ended last, with the one that ended before it: the runtime still lists both,
/// and the status shows the older one as `lastState` while the newer one is the `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Exited {
    pub term: Termination,
    pub before: Option<Termination>,
}

/// The running program of a container and its probes.
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub id: String,
    pub started_at: Timestamp,
    pub program: Program,
    pub probes: Vec<ProbeState>,
    /// The startup probe passed (or there is none): `started` in the status.
    pub started: bool,
    pub image: ImageRef,
    /// The restart count when it started; `kubectl logs --previous` tells runs apart by it.
    pub attempt: u32,
    /// When the program wants to be advanced next.
    pub wake: Option<Timestamp>,
    /// When a fault kills this run, as of the last sync.
    pub kill: Option<crate::sim::faults::Kill>,
}

impl Run {
    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeState> {
        self.probes.iter().find(|p| p.spec.kind == kind)
    }

    /// `ready` in the status of a running container: started and, with a readiness probe,
    /// passing it.
    pub fn ready(&self) -> bool {
        self.started && self.probe(ProbeKind::Readiness).is_none_or(|p| p.passing)
    }
}

/// An image pull under way and what it will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pull {
    pub done_at: Timestamp,
    pub outcome: PullOutcome,
    pub image: ImageRef,
    pub duration: Duration,
}

/// What the kubelet has under way for a waiting container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Nothing: the next sync that may start the container tries.
    Idle,
    /// Pulling its image.
    Pulling(Pull),
    /// Holding its restart back until `until` (a wake-up only: the back-off table decides).
    BackOff { until: Timestamp },
}

/// A container's state.
#[derive(Debug, Clone)]
pub(super) enum ContainerState {
    /// Not running and not shown as exited: not started yet, or its (re)start failed or is
    /// held back.
    Waiting {
        reason: WaitingReason,
        /// Empty for the reasons a container has before its first start.
        message: String,
        /// The last run, shown as `lastState`; `None` before the first start.
        last: Option<Exited>,
        attempt: Attempt,
    },
    /// Its program runs.
    Running {
        run: Box<Run>,
        /// The previous run, shown as `lastState`.
        last: Option<Termination>,
    },
    /// Its last run ended and the kubelet has no error to report about restarting it.
    Terminated {
        exited: Exited,
        /// When the kubelet notices the exit (its next relist): until then the container
        /// still counts as running for the kubelet's decisions.
        noticed_at: Timestamp,
        /// A pull for its restart, under way.
        pull: Option<Pull>,
    },
}

impl ContainerState {
    const fn name(&self) -> &'static str {
        match self {
            Self::Waiting { .. } => "waiting",
            Self::Running { .. } => "running",
            Self::Terminated { .. } => "terminated",
        }
    }
}

/// What happens to a container; fed to [`Lifecycle::transition`].
#[derive(Debug)]
pub(super) enum Input {
    /// It was created and started with this run (its `attempt` is
    /// [`Lifecycle::next_attempt`]).
    Started(Box<Run>),
    /// The running program has exited (see `Program::exit`); the kubelet notices it
    /// `notice_after` later.
    Exited { notice_after: Duration },
    /// Its process is killed with SIGKILL at `at` by something outside the kubelet (a fault,
    /// or the kernel's OOM killer when `oom`); the kubelet notices it `notice_after` later.
    Killed {
        at: Timestamp,
        oom: bool,
        notice_after: Duration,
    },
    /// The kubelet stops it at `at`: the pod was deleted, or it finished and its remaining
    /// containers are stopped.
    Stopped { at: Timestamp, pod_deleted: bool },
    /// A pull of its image began.
    Pulling(Pull),
    /// Starting it failed.
    Failed {
        reason: WaitingReason,
        message: String,
    },
    /// Its restart is backing off (`CrashLoopBackOff`) until `until`.
    BackedOff {
        message: String,
        until: Option<Timestamp>,
    },
}

impl Input {
    const fn name(&self) -> &'static str {
        match self {
            Self::Started(_) => "started",
            Self::Exited { .. } => "exited",
            Self::Killed { .. } => "killed",
            Self::Stopped { .. } => "stopped",
            Self::Pulling(_) => "pulling",
            Self::Failed { .. } => "failed",
            Self::BackedOff { .. } => "backed-off",
        }
    }
}

/// An input the current state does not accept; the state is left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {state} container cannot take the {input} input")]
pub(super) struct Refused {
    /// The state's name.
    pub state: &'static str,
    /// The input's name.
    pub input: &'static str,
}

/// A container's state with its restart count.
#[derive(Debug, Clone)]
pub(super) struct Lifecycle {
    state: ContainerState,
    restart_count: u32,
}

impl Lifecycle {
    /// A container not started yet: `PodInitializing` in a pod with init containers, else
    /// `ContainerCreating` (pkg/kubelet/kubelet_pods.go `convertToAPIContainerStatuses`,
    /// its default waiting state).
    pub const fn new(pod_has_init_containers: bool) -> Self {
        let reason = if pod_has_init_containers {
            WaitingReason::PodInitializing
        } else {
            WaitingReason::ContainerCreating
        };
        Self {
            state: ContainerState::Waiting {
                reason,
                message: String::new(),
                last: None,
                attempt: Attempt::Idle,
            },
            restart_count: 0,
        }
    }

    pub const fn state(&self) -> &ContainerState {
        &self.state
    }

    pub const fn restart_count(&self) -> u32 {
        self.restart_count
    }

    /// The restart count the next run starts with.
    pub const fn next_attempt(&self) -> u32 {
        match &self.state {
            ContainerState::Waiting { last: None, .. } => self.restart_count,
            _ => self.restart_count + 1,
        }
    }

    pub fn running(&self) -> Option<&Run> {
        match &self.state {
            ContainerState::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    /// The running program, to advance and probe it. Its exit is a transition
    /// ([`Input::Exited`]).
    pub fn running_mut(&mut self) -> Option<&mut Run> {
        match &mut self.state {
            ContainerState::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    /// The run that ended last, when the container is not running.
    pub const fn exited(&self) -> Option<&Termination> {
        match &self.state {
            ContainerState::Waiting {
                last: Some(exited), ..
            }
            | ContainerState::Terminated { exited, .. } => Some(&exited.term),
            _ => None,
        }
    }

    /// Whether the container ever started.
    pub const fn created(&self) -> bool {
        !matches!(self.state, ContainerState::Waiting { last: None, .. })
    }

    /// The pull under way, if any.
    pub const fn pull(&self) -> Option<&Pull> {
        match &self.state {
            ContainerState::Waiting {
                attempt: Attempt::Pulling(pull),
                ..
            }
            | ContainerState::Terminated {
                pull: Some(pull), ..
            } => Some(pull),
            _ => None,
        }
    }

    /// Whether the container waits after a failed (re)start or a restart back-off, and is not
    /// pulling: the kubelet tries it again at its pod's next sync.
    pub const fn held_back(&self) -> bool {
        match &self.state {
            ContainerState::Waiting {
                reason,
                attempt: Attempt::Idle | Attempt::BackOff { .. },
                ..
            } => matches!(reason, WaitingReason::CrashLoopBackOff) || reason.is_start_error(),
            _ => false,
        }
    }

    /// Whether the kubelet noticed the container's exit after `since` (never, if `None`) and
    /// no later than `now`: the relist that notices it syncs the pod.
    pub fn noticed_between(&self, since: Option<Timestamp>, now: Timestamp) -> bool {
        matches!(self.state, ContainerState::Terminated { noticed_at, .. }
            if noticed_at <= now && since.is_none_or(|s| noticed_at > s))
    }

    /// Whether the container exited and the kubelet has not noticed yet.
    pub fn unnoticed(&self, now: Timestamp) -> bool {
        matches!(self.state, ContainerState::Terminated { noticed_at, .. } if noticed_at > now)
    }

    /// The one place the state changes. The legal transitions, with what each carries over;
    /// any other input is refused and leaves the state as it was:
    ///
    /// - `Waiting` + `Started` → `Running`. `lastState` becomes the last run; the restart
    ///   count grows by one when there was a last run (a first start keeps 0).
    /// - `Terminated` + `Started` → `Running`, the exited run as `lastState`, restart count
    ///   plus one.
    /// - `Running` + `Exited` → `Terminated`, once the program has exited (refused before):
    ///   the run becomes the termination (exit code, `Completed`/`Error`, start and finish),
    ///   the previous run its `lastState`, noticed `notice_after` after the exit.
    /// - `Running` + `Killed` → `Terminated` with exit code 137 (128 + SIGKILL) at the kill,
    ///   reason `OOMKilled` for the OOM killer and `Error` otherwise, noticed `notice_after`
    ///   later; the previous run becomes its `lastState`. Refused once the program has exited
    ///   by itself (that is `Exited`).
    /// - `Running` + `Stopped` → `Terminated`: the program is sent SIGTERM and the run ends at
    ///   the stop with its exit code (143).
    /// - `Waiting` with a last run + `Stopped` of a deleted pod → `Terminated` with that run:
    ///   a deleted pod's containers are never restarted, so no start error is shown
    ///   (kubecontainer `ShouldContainerBeRestarted`).
    /// - Any other `Waiting` or `Terminated` + `Stopped` → the same state, its pull or
    ///   back-off dropped.
    /// - `Waiting` (not pulling) + `Pulling` → `Waiting` with the pull under way, its reason
    ///   and message kept; `Terminated` (not pulling) + `Pulling` → `Terminated` with the pull.
    /// - `Waiting` or `Terminated` + `Failed` → `Waiting` with that reason and message,
    ///   whatever was under way dropped and the last run (if any) kept for `lastState`.
    ///   Refused for the reasons that are no start error (`ContainerCreating`,
    ///   `PodInitializing`, `CrashLoopBackOff`).
    /// - `Terminated`, or `Waiting` with a last run, not pulling + `BackedOff` →
    ///   `Waiting` `CrashLoopBackOff` until the deadline, the last run kept. Refused before
    ///   the first run: only an exit backs off.
    ///
    /// The restart count changes only on `Started`; nothing leads back to the waiting state
    /// a container has before its first start.
    ///
    /// # Errors
    ///
    /// [`Refused`] when the input is not legal in the current state.
    pub fn transition(&mut self, input: Input) -> Result<(), Refused> {
        let placeholder = ContainerState::Waiting {
            reason: WaitingReason::ContainerCreating,
            message: String::new(),
            last: None,
            attempt: Attempt::Idle,
        };
        let state = std::mem::replace(&mut self.state, placeholder);
        let (next, result) = step(state, input, &mut self.restart_count);
        self.state = next;
        result
    }
}

/// [`Lifecycle::transition`] on owned values: the next state and whether the input was legal.
fn step(
    state: ContainerState,
    input: Input,
    restart_count: &mut u32,
) -> (ContainerState, Result<(), Refused>) {
    use ContainerState::{Running, Terminated, Waiting};
    let next = match (state, input) {
        (Waiting { last, .. }, Input::Started(run)) => {
            if last.is_some() {
                *restart_count += 1;
            }
            Running {
                run,
                last: last.map(|e| e.term),
            }
        }
        (Terminated { exited, .. }, Input::Started(run)) => {
            *restart_count += 1;
            Running {
                run,
                last: Some(exited.term),
            }
        }
        (Running { run, last }, Input::Exited { notice_after }) => match run.program.exit() {
            Some(exit) => Terminated {
                exited: Exited {
                    term: Termination::of(&run, exit.code, exit.at),
                    before: last,
                },
                noticed_at: after(exit.at, notice_after),
                pull: None,
            },
            None => return refuse(Running { run, last }, "exited"),
        },
        (
            Running { mut run, last },
            Input::Killed {
                at,
                oom,
                notice_after,
            },
        ) => {
            if run.program.exit().is_some() {
                // A program that already exited is noticed as such (`Exited`).
                return refuse(Running { run, last }, "killed");
            }
            run.program.kill(at);
            let code = run.program.exit().map_or(SIGKILL_EXIT, |e| e.code);
            let mut term = Termination::of(&run, code, at);
            if oom {
                term.reason = TerminatedReason::OomKilled;
            }
            Terminated {
                exited: Exited { term, before: last },
                noticed_at: after(at, notice_after),
                pull: None,
            }
        }
        (Running { mut run, last }, Input::Stopped { at, .. }) => {
            run.program.terminate(at);
            // 128 + SIGTERM, should the program report no exit.
            let code = run.program.exit().map_or(143, |e| e.code);
            Terminated {
                exited: Exited {
                    term: Termination::of(&run, code, at),
                    before: last,
                },
                noticed_at: at,
                pull: None,
            }
        }
        (
            Waiting {
                last: Some(exited), ..
            },
            Input::Stopped {
                at,
                pod_deleted: true,
            },
        ) => Terminated {
            exited,
            noticed_at: at,
            pull: None,
        },
        (
            Waiting {
                reason,
                message,
                last,
                ..
            },
            Input::Stopped { .. },
        ) => Waiting {
            reason,
            message,
            last,
            attempt: Attempt::Idle,
        },
        (
            Terminated {
                exited, noticed_at, ..
            },
            Input::Stopped { .. },
        ) => Terminated {
            exited,
            noticed_at,
            pull: None,
        },
        (
            Waiting {
                reason,
                message,
                last,
                attempt: Attempt::Idle | Attempt::BackOff { .. },
            },
            Input::Pulling(pull),
        ) => Waiting {
            reason,
            message,
            last,
            attempt: Attempt::Pulling(pull),
        },
        (
            Terminated {
                exited,
                noticed_at,
                pull: None,
            },
            Input::Pulling(pull),
        ) => Terminated {
            exited,
            noticed_at,
            pull: Some(pull),
        },
        (Waiting { last, .. }, Input::Failed { reason, message }) if reason.is_start_error() => {
            Waiting {
                reason,
                message,
                last,
                attempt: Attempt::Idle,
            }
        }
        (Terminated { exited, .. }, Input::Failed { reason, message })
            if reason.is_start_error() =>
        {
            Waiting {
                reason,
                message,
                last: Some(exited),
                attempt: Attempt::Idle,
            }
        }
        (
            Waiting {
                last: Some(exited),
                attempt: Attempt::Idle | Attempt::BackOff { .. },
                ..
            }
            | Terminated {
                exited, pull: None, ..
            },
            Input::BackedOff { message, until },
        ) => Waiting {
            reason: WaitingReason::CrashLoopBackOff,
            message,
            last: Some(exited),
            attempt: until.map_or(Attempt::Idle, |until| Attempt::BackOff { until }),
        },
        (state, input) => return refuse(state, input.name()),
    };
    (next, Ok(()))
}

fn refuse(state: ContainerState, input: &'static str) -> (ContainerState, Result<(), Refused>) {
    let refused = Refused {
        state: state.name(),
        input,
    };
    (state, Err(refused))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Arch;
    use crate::sim::behaviour::ContainerContext;

    fn t(s: u64) -> Timestamp {
        after(
            "2025-01-01T00:00:00Z".parse().unwrap(),
            Duration::from_secs(s),
        )
    }

    fn run(attempt: u32, at: u64) -> Box<Run> {
        let ctx = ContainerContext {
            args: Vec::new(),
            files: std::collections::BTreeMap::new(),
            namespace: "apps".into(),
            pod_name: "app".into(),
            container: "app".into(),
            command: vec![],
            env: Default::default(),
            node_arch: Arch::Amd64,
            service_account: "default".into(),
        };
        Box::new(Run {
            id: format!("containerd://{attempt}"),
            started_at: t(at),
            program: Program::start(None, ctx, t(at)),
            probes: vec![],
            started: true,
            image: ImageRef::parse("app:1"),
            attempt,
            wake: None,
            kill: None,
        })
    }

    fn pull(done: u64) -> Pull {
        Pull {
            done_at: t(done),
            outcome: PullOutcome::Failed("not found".into()),
            image: ImageRef::parse("app:1"),
            duration: Duration::from_millis(500),
        }
    }

    /// Starts the container at `start` and stops its program at `end` (143, noticed 1 s later).
    fn run_and_exit(l: &mut Lifecycle, start: u64, end: u64) {
        l.transition(Input::Started(run(l.next_attempt(), start)))
            .unwrap();
        l.running_mut().unwrap().program.terminate(t(end));
        l.transition(Input::Exited {
            notice_after: Duration::from_secs(1),
        })
        .unwrap();
    }

    fn reason_and_last(l: &Lifecycle) -> (Option<WaitingReason>, Option<String>) {
        match l.state() {
            ContainerState::Waiting { reason, last, .. } => {
                (Some(*reason), last.as_ref().map(|e| e.term.id.clone()))
            }
            ContainerState::Running { last, .. } => (None, last.as_ref().map(|t| t.id.clone())),
            ContainerState::Terminated { exited, .. } => {
                (None, exited.before.as_ref().map(|t| t.id.clone()))
            }
        }
    }

    #[test]
    fn reasons_are_the_upstream_texts() {
        let texts: Vec<&str> = [
            WaitingReason::ContainerCreating,
            WaitingReason::PodInitializing,
            WaitingReason::ErrImagePull,
            WaitingReason::ImagePullBackOff,
            WaitingReason::ErrImageNeverPull,
            WaitingReason::CreateContainerConfigError,
            WaitingReason::CrashLoopBackOff,
        ]
        .map(WaitingReason::as_str)
        .to_vec();
        assert_eq!(
            texts,
            [
                "ContainerCreating",
                "PodInitializing",
                "ErrImagePull",
                "ImagePullBackOff",
                "ErrImageNeverPull",
                "CreateContainerConfigError",
                "CrashLoopBackOff"
            ]
        );
        assert_eq!(TerminatedReason::of_exit(0).as_str(), "Completed");
        assert_eq!(TerminatedReason::of_exit(1).as_str(), "Error");
        assert_eq!(TerminatedReason::of_exit(143).as_str(), "Error");
    }

    #[test]
    fn a_first_start_keeps_the_count_and_restarts_carry_the_last_run() {
        let mut l = Lifecycle::new(false);
        assert_eq!(
            reason_and_last(&l),
            (Some(WaitingReason::ContainerCreating), None)
        );
        assert!(!l.created());
        assert_eq!(l.next_attempt(), 0);

        run_and_exit(&mut l, 0, 5);
        assert_eq!(l.restart_count(), 0);
        let ContainerState::Terminated {
            exited, noticed_at, ..
        } = l.state()
        else {
            panic!("{:?}", l.state());
        };
        assert_eq!(
            (exited.term.exit_code, exited.term.reason),
            (143, TerminatedReason::Error)
        );
        assert_eq!(
            (exited.term.started_at, exited.term.finished_at),
            (t(0), t(5))
        );
        assert_eq!(*noticed_at, t(6));
        assert!(l.unnoticed(t(5)) && !l.unnoticed(t(6)));
        assert_eq!(l.next_attempt(), 1);

        // Restarted: the exited run is the last state, the count grows.
        l.transition(Input::Started(run(l.next_attempt(), 6)))
            .unwrap();
        assert_eq!(l.restart_count(), 1);
        assert_eq!(reason_and_last(&l), (None, Some("containerd://0".into())));
        // The second exit keeps the first as the run before it.
        l.running_mut().unwrap().program.terminate(t(9));
        l.transition(Input::Exited {
            notice_after: Duration::ZERO,
        })
        .unwrap();
        assert_eq!(reason_and_last(&l), (None, Some("containerd://0".into())));
        assert_eq!(l.exited().unwrap().id, "containerd://1");
        assert!(!l.unnoticed(t(9)));
    }

    #[test]
    fn start_errors_before_the_first_run_keep_no_last_state() {
        let mut l = Lifecycle::new(true);
        assert_eq!(
            reason_and_last(&l),
            (Some(WaitingReason::PodInitializing), None)
        );
        l.transition(Input::Pulling(pull(1))).unwrap();
        assert_eq!(l.pull().unwrap().done_at, t(1));
        // The reason shown does not change while pulling.
        assert_eq!(
            reason_and_last(&l),
            (Some(WaitingReason::PodInitializing), None)
        );
        l.transition(Input::Failed {
            reason: WaitingReason::ErrImagePull,
            message: "not found".into(),
        })
        .unwrap();
        assert!(l.pull().is_none());
        let ContainerState::Waiting { message, .. } = l.state() else {
            panic!("{:?}", l.state());
        };
        assert_eq!(message, "not found");
        l.transition(Input::Failed {
            reason: WaitingReason::CreateContainerConfigError,
            message: "secret \"db\" not found".into(),
        })
        .unwrap();
        assert_eq!(
            reason_and_last(&l),
            (Some(WaitingReason::CreateContainerConfigError), None)
        );
        l.transition(Input::Started(run(0, 30))).unwrap();
        assert_eq!(l.restart_count(), 0);
        assert_eq!(reason_and_last(&l), (None, None));
    }

    #[test]
    fn back_off_holds_the_exited_run_until_the_restart() {
        let mut l = Lifecycle::new(false);
        run_and_exit(&mut l, 0, 1);
        l.transition(Input::BackedOff {
            message: "back-off 10s restarting failed container".into(),
            until: Some(t(11)),
        })
        .unwrap();
        let ContainerState::Waiting {
            reason,
            attempt,
            last: Some(last),
            ..
        } = l.state()
        else {
            panic!("{:?}", l.state());
        };
        assert_eq!(*reason, WaitingReason::CrashLoopBackOff);
        assert_eq!(*attempt, Attempt::BackOff { until: t(11) });
        assert_eq!(last.term.id, "containerd://0");
        assert_eq!(l.exited().unwrap().exit_code, 143);

        // After the back-off a pull keeps the reason shown; the restart counts.
        l.transition(Input::Pulling(pull(12))).unwrap();
        assert_eq!(
            reason_and_last(&l),
            (
                Some(WaitingReason::CrashLoopBackOff),
                Some("containerd://0".into())
            )
        );
        l.transition(Input::Started(run(l.next_attempt(), 12)))
            .unwrap();
        assert_eq!(l.restart_count(), 1);
        assert!(l.pull().is_none());
    }

    #[test]
    fn stopping_ends_runs_and_drops_what_was_under_way() {
        // A running container ends at the stop with 143.
        let mut l = Lifecycle::new(false);
        l.transition(Input::Started(run(0, 0))).unwrap();
        l.transition(Input::Stopped {
            at: t(30),
            pod_deleted: true,
        })
        .unwrap();
        let term = l.exited().unwrap();
        assert_eq!((term.exit_code, term.finished_at), (143, t(30)));
        assert!(!l.unnoticed(t(30)));

        // A container backing off stays waiting when the pod finished, but shows its exit
        // when the pod is deleted, with the run before it still as the last state.
        let mut l = Lifecycle::new(false);
        run_and_exit(&mut l, 0, 1);
        l.transition(Input::Started(run(l.next_attempt(), 2)))
            .unwrap();
        l.running_mut().unwrap().program.terminate(t(3));
        l.transition(Input::Exited {
            notice_after: Duration::from_secs(1),
        })
        .unwrap();
        l.transition(Input::BackedOff {
            message: String::new(),
            until: Some(t(13)),
        })
        .unwrap();
        l.transition(Input::Stopped {
            at: t(5),
            pod_deleted: false,
        })
        .unwrap();
        assert!(matches!(
            l.state(),
            ContainerState::Waiting {
                reason: WaitingReason::CrashLoopBackOff,
                attempt: Attempt::Idle,
                ..
            }
        ));
        l.transition(Input::Stopped {
            at: t(6),
            pod_deleted: true,
        })
        .unwrap();
        assert_eq!(reason_and_last(&l), (None, Some("containerd://0".into())));
        assert_eq!(l.exited().unwrap().id, "containerd://1");
        assert_eq!(l.restart_count(), 1);

        // A pull under way for an exited container is dropped.
        let mut l = Lifecycle::new(false);
        run_and_exit(&mut l, 0, 1);
        l.transition(Input::Pulling(pull(3))).unwrap();
        l.transition(Input::Stopped {
            at: t(2),
            pod_deleted: false,
        })
        .unwrap();
        assert!(l.pull().is_none());
        assert!(matches!(l.state(), ContainerState::Terminated { .. }));
    }

    #[test]
    fn illegal_inputs_are_refused_and_change_nothing() {
        let mut l = Lifecycle::new(false);
        // Only an exit backs off.
        assert_eq!(
            l.transition(Input::BackedOff {
                message: String::new(),
                until: None,
            }),
            Err(Refused {
                state: "waiting",
                input: "backed-off"
            })
        );
        // The reasons of a container not started yet, and the back-off, are no start error.
        for reason in [
            WaitingReason::PodInitializing,
            WaitingReason::CrashLoopBackOff,
        ] {
            assert!(
                l.transition(Input::Failed {
                    reason,
                    message: String::new(),
                })
                .is_err()
            );
        }
        assert_eq!(
            reason_and_last(&l),
            (Some(WaitingReason::ContainerCreating), None)
        );
        // A second pull while one is under way.
        l.transition(Input::Pulling(pull(1))).unwrap();
        assert!(l.transition(Input::Pulling(pull(2))).is_err());
        assert_eq!(l.pull().unwrap().done_at, t(1));

        l.transition(Input::Started(run(0, 1))).unwrap();
        // A running container neither starts again, pulls, fails to start nor backs off.
        let err = l.transition(Input::Started(run(1, 2))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a running container cannot take the started input"
        );
        assert!(l.transition(Input::Pulling(pull(3))).is_err());
        assert!(
            l.transition(Input::Failed {
                reason: WaitingReason::ErrImagePull,
                message: String::new(),
            })
            .is_err()
        );
        // Its program has not exited: no exit to record.
        assert!(
            l.transition(Input::Exited {
                notice_after: Duration::ZERO
            })
            .is_err()
        );
        assert_eq!(l.running().unwrap().started_at, t(1));
        assert_eq!(l.restart_count(), 0);
        // Nothing exits twice.
        l.running_mut().unwrap().program.terminate(t(4));
        l.transition(Input::Exited {
            notice_after: Duration::ZERO,
        })
        .unwrap();
        assert!(
            l.transition(Input::Exited {
                notice_after: Duration::ZERO
            })
            .is_err()
        );
        assert_eq!(l.exited().unwrap().finished_at, t(4));
    }
}
