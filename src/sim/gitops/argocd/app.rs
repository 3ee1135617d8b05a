//! The application controller (controller/appcontroller.go, controller/state.go,
//! controller/sync.go of Argo CD v3.5.1): for each Application, the desired state rendered
//! from Git, compared with the live state, its health, the status it writes, automated sync,
//! and the sync operation it runs ([`super::sync`]).

use jiff::Timestamp;

use super::client::Client;
use super::repo::Repos;
use crate::sim::events::EventRecorder;

/// The controller's memory between rounds, per Application.
#[derive(Debug, Default)]
pub struct AppController {}

impl AppController {
    /// One pass over every Application; returns the earliest time it wants to run again.
    pub fn reconcile(
        &mut self,
        client: &Client,
        repos: &Repos,
        recorder: &mut EventRecorder,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let _ = (client, repos, recorder, now);
        None
    }
}
