//! Stand-in programs: what a container does on the simulated cluster, read from its image's
//! declared behaviour.
//!
//! The interpreter is pure: it is given the time, a read-only [`ClusterViewExt`] and the
//! container's resolved environment, and answers with log lines, an exit, readiness and the
//! next moment something happens. Checks against the real PostgreSQL server are not made here:
//! the program stops at such a check and hands back a [`PostgresRequest`] for the caller to
//! carry out, then continues with [`Program::postgres_result`].

pub mod config;
mod leader;
mod operator;
mod program;
pub mod time;
mod view;

pub use operator::{desired_objects, template};
pub use program::{
    ContainerContext, DEFAULT_RETRY, Exit, OPERATOR_RELIST, OutputLine, PostgresConnector,
    PostgresOutcome, PostgresRequest, Program, Progress,
};
pub use view::{ClusterView, ClusterViewExt, StaticView};
