//! Keeping secret values out of everything a run reports.
//!
//! Redaction goes by knowing which values are secret, not by what they look like: the `data`
//! and `stringData` values of every Secret the scenario applies, the generated Postgres
//! passwords of its roles, and the values of the Secrets in the cluster when a run ends (which
//! is also where values programs read from Secrets into their environment come from). A
//! [`Redactor`] holds those values (as written, base64-encoded and escaped as `{:?}` prints
//! them) and replaces each occurrence with [`REDACTED`]. A run redacts its outcome before it
//! returns it, so failure reports, JUnit files and test output never see a value; the values
//! are also added to a process-wide redactor ([`remember`], [`global`]) for log output.
//!
//! Values of 1 or 2 characters are not redacted (they would blank out every count and flag of
//! a report); values of 3 to 5 characters only where they stand alone (not inside a longer
//! name such as `grafana-admin-credentials`); longer values and every base64 form wherever
//! they appear.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use k8s_openapi::ByteString;
use serde_json::Value;

use super::outcome::{Failure, RunTimeline, ScenarioOutcome, Verdict};
use super::session::Session;
use crate::scenario::{Expectation, LoadedScenario, Step};

/// What a secret value is replaced with (the snapshot's marker too).
pub const REDACTED: &str = super::snapshot::REDACTED;

/// Values shorter than this are never redacted.
const MIN_LEN: usize = 3;
/// Values shorter than this are redacted only where they stand alone.
const MIN_ANYWHERE: usize = 6;

/// The secret values of one run (or of the process, see [`global`]).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Forms replaced wherever they occur.
    anywhere: BTreeSet<String>,
    /// Forms replaced where they are not part of a longer word.
    standalone: BTreeSet<String>,
}

impl Redactor {
    /// A redactor that knows no value yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether it knows no value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.anywhere.is_empty() && self.standalone.is_empty()
    }

    /// Adds a secret value (as a Secret's `stringData` holds it, or a password). A connection
    /// URL's password (`redis://:<password>@host`) is added on its own too: a program reads it
    /// out of the value and connects with it.
    pub fn add_plain(&mut self, value: &str) {
        if let Some((raw, decoded)) = url_password(value) {
            self.add_plain(&decoded);
            if raw != decoded {
                self.add_plain(&raw);
            }
        }
        self.add_form(value);
        if value.chars().count() < MIN_LEN {
            return;
        }
        // How it reads base64-encoded (a Secret's `data`) and escaped (`{:?}`, JSON).
        self.add_encoded(value.as_bytes());
        let debug = format!("{value:?}");
        self.add_form(debug.trim_matches('"'));
        if let Ok(json) = serde_json::to_string(value) {
            self.add_form(json.trim_matches('"'));
        }
    }

    /// Adds a secret value given as bytes (a Secret's decoded `data`).
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.add_plain(text),
            Err(_) => self.add_encoded(bytes),
        }
    }

    /// Adds a value as a Secret's `data` holds it (base64): the encoded and the decoded form.
    pub fn add_base64(&mut self, encoded: &str) {
        match serde_json::from_value::<ByteString>(Value::String(encoded.to_owned())) {
            Ok(ByteString(bytes)) => self.add_bytes(&bytes),
            Err(_) => self.add_plain(encoded),
        }
        self.add_form(encoded);
    }

    /// Adds every value another redactor knows.
    pub fn extend(&mut self, other: &Self) {
        self.anywhere.extend(other.anywhere.iter().cloned());
        self.standalone.extend(other.standalone.iter().cloned());
    }

    /// Adds the `data`/`stringData` values of `object` when it is a Secret.
    pub fn add_secret_object(&mut self, object: &Value) {
        if object.get("kind").and_then(Value::as_str) != Some("Secret") {
            return;
        }
        for (field, encoded) in [("data", true), ("binaryData", true), ("stringData", false)] {
            let Some(values) = object.get(field).and_then(Value::as_object) else {
                continue;
            };
            for value in values.values().filter_map(Value::as_str) {
                if encoded {
                    self.add_base64(value);
                } else {
                    self.add_plain(value);
                }
            }
        }
    }

    /// The Secret values a scenario writes itself: in its manifest files and inline objects.
    #[must_use]
    pub fn for_scenario(loaded: &LoadedScenario) -> Self {
        let mut r = Self::new();
        for object in loaded.manifests.values().flatten() {
            r.add_secret_object(object);
        }
        let s = &loaded.scenario;
        let steps = s
            .setup
            .iter()
            .chain(&s.break_.steps)
            .chain(&s.fix)
            .chain(s.mutants.iter().flat_map(|m| &m.fix));
        for step in steps {
            if let Step::Apply(a) = step {
                match &a.inline {
                    Some(Value::Array(items)) => items.iter().for_each(|o| r.add_secret_object(o)),
                    Some(object) => r.add_secret_object(object),
                    None => {}
                }
            }
        }
        r
    }

    fn add_encoded(&mut self, bytes: &[u8]) {
        if let Ok(Value::String(b64)) = serde_json::to_value(ByteString(bytes.to_vec())) {
            // Base64 text never reads as an ordinary word: redacted wherever it appears.
            if b64.len() >= 4 {
                self.anywhere.insert(b64);
            }
        }
    }

    fn add_form(&mut self, form: &str) {
        match form.chars().count() {
            n if n < MIN_LEN => {}
            n if n < MIN_ANYWHERE => {
                self.standalone.insert(form.to_owned());
            }
            _ => {
                self.anywhere.insert(form.to_owned());
            }
        }
    }

    /// `text` with every known value replaced by [`REDACTED`].
    #[must_use]
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Cow::Borrowed(text);
        // Longest first: a value that contains another is replaced whole.
        let mut anywhere: Vec<&String> = self.anywhere.iter().collect();
        anywhere.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in anywhere {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), REDACTED));
            }
        }
        let mut standalone: Vec<&String> = self.standalone.iter().collect();
        standalone.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in standalone {
            if out.contains(value.as_str()) {
                out = Cow::Owned(replace_standalone(&out, value));
            }
        }
        out
    }

    /// Redacts every text of an outcome: its failure (summary, expectation, mismatches, events,
    /// pods, logs, diagnostics) or the reason it was ignored.
    pub fn redact_outcome(&self, outcome: &mut ScenarioOutcome) {
        match &mut outcome.verdict {
            Verdict::Failed(f) => self.redact_failure(f),
            Verdict::Ignored(reason) => self.redact_in_place(reason),
            Verdict::Passed => {}
        }
        if let Some(timeline) = &mut outcome.timeline {
            for run in &mut timeline.runs {
                self.redact_run(run);
            }
        }
    }

    /// Redacts every text of a recorded run: marks, lane names, states and events.
    pub fn redact_run(&self, run: &mut RunTimeline) {
        if self.is_empty() {
            return;
        }
        for mark in &mut run.marks {
            self.redact_in_place(&mut mark.label);
        }
        for lane in &mut run.lanes {
            self.redact_in_place(&mut lane.name);
            for s in &mut lane.states {
                self.redact_in_place(&mut s.state);
                self.redact_in_place(&mut s.detail);
            }
            for e in &mut lane.events {
                self.redact_in_place(&mut e.reason);
                self.redact_in_place(&mut e.message);
            }
        }
    }

    /// Redacts every text of a failure.
    pub fn redact_failure(&self, f: &mut Failure) {
        if self.is_empty() {
            return;
        }
        self.redact_in_place(&mut f.summary);
        self.redact_in_place(&mut f.expectation);
        let ctx = &mut f.context;
        for line in f
            .mismatches
            .iter_mut()
            .chain(&mut ctx.events)
            .chain(&mut ctx.pods)
            .chain(&mut ctx.diagnostics)
        {
            self.redact_in_place(line);
        }
        for (container, lines) in &mut ctx.logs {
            self.redact_in_place(container);
            for line in lines {
                self.redact_in_place(line);
            }
        }
    }

    fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.redact(text) {
            *text = redacted;
        }
    }
}

/// `text` with each occurrence of `value` that is not part of a longer word replaced.
fn replace_standalone(text: &str, value: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(value) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + value.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(word) || after.is_some_and(word) {
            out.push_str(value);
        } else {
            out.push_str(REDACTED);
        }
        rest = &rest[i + value.len()..];
    }
    out.push_str(rest);
    out
}

impl Session<'_> {
    /// Every secret value this run knows of: the scenario's own, its roles' generated
    /// passwords, and the values of the Secrets now in the namespaces the run touched or names.
    /// Also added to the process-wide redactor.
    pub(super) async fn redactor(&self) -> Redactor {
        let mut r = self.static_redactor();
        for ns in self.secret_namespaces() {
            let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(self.cluster.client(), &ns);
            let Ok(list) = secrets.list(&kube::api::ListParams::default()).await else {
                continue;
            };
            for secret in list.items {
                for bytes in secret.data.iter().flat_map(|d| d.values()) {
                    r.add_bytes(&bytes.0);
                }
                for text in secret.string_data.iter().flat_map(|d| d.values()) {
                    r.add_plain(text);
                }
            }
        }
        remember(&r);
        r
    }

    /// The values known before anything runs: the scenario's Secrets and generated passwords.
    pub(super) fn static_redactor(&self) -> Redactor {
        let mut r = Redactor::for_scenario(self.loaded);
        if let (Some(tenant), Some(spec)) = (&self.tenant, &self.loaded.scenario.postgres) {
            for role in &spec.roles {
                if let Some(password) = tenant.password(&role.name) {
                    r.add_plain(password.expose());
                }
            }
        }
        r
    }

    /// Redacts an outcome of this run with [`Session::redactor`].
    pub(super) async fn redact(&self, outcome: &mut ScenarioOutcome) {
        self.redactor().await.redact_outcome(outcome);
    }

    /// The namespaces whose Secrets may show up in a report: those the run applied to and
    /// those the scenario's expectations, steps and password Secrets name.
    fn secret_namespaces(&self) -> BTreeSet<String> {
        let mut out = self.namespaces.clone();
        let s = &self.loaded.scenario;
        let expectations = s
            .healthy
            .iter()
            .chain(&s.break_.symptoms)
            .chain(&s.converge.expect);
        let steps = s
            .setup
            .iter()
            .chain(&s.break_.steps)
            .chain(&s.fix)
            .chain(s.mutants.iter().flat_map(|m| &m.fix));
        let namespace_of = |e: &'_ Expectation| -> Option<String> {
            match e {
                Expectation::Object(o) => o.namespace.clone(),
                Expectation::App(a) => {
                    Some(a.namespace.clone().unwrap_or_else(|| "argocd".to_owned()))
                }
                Expectation::Absent(a) => a.object.namespace.clone(),
                Expectation::Log(l) => Some(l.namespace.clone()),
                Expectation::Event(e) => Some(e.namespace.clone()),
                Expectation::SqlError(_) | Expectation::Sql(_) => None,
            }
        };
        let mut names: Vec<Option<String>> = expectations.map(namespace_of).collect();
        for step in steps {
            names.push(match step {
                Step::Expect(e) => namespace_of(e),
                Step::Delete(d) => d.object.namespace.clone(),
                Step::Patch(p) => p.object.namespace.clone(),
                Step::Scale(sc) => sc.object.namespace.clone(),
                Step::RolloutRestart(r) => r.namespace.clone(),
                Step::Fault(f) => f
                    .container_kill
                    .as_ref()
                    .or(f.oom_kill.as_ref())
                    .map(|k| k.namespace.clone())
                    .or_else(|| f.dns_failure.as_ref().and_then(|d| d.namespace.clone())),
                Step::Apply(_)
                | Step::Sql(_)
                | Step::Sleep(_)
                | Step::EndFault(_)
                | Step::AddNode(_)
                | Step::RemoveNode(_)
                | Step::LoadBalancer(_)
                | Step::Commit(_) => None,
            });
        }
        for role in s.postgres.iter().flat_map(|p| &p.roles) {
            if let Some(target) = &role.password_secret {
                names.push(Some(target.namespace.clone()));
            }
        }
        out.extend(names.into_iter().flatten());
        out
    }
}

fn registry() -> &'static Mutex<Redactor> {
    static GLOBAL: OnceLock<Mutex<Redactor>> = OnceLock::new();
    GLOBAL.get_or_init(Mutex::default)
}

/// Adds a run's values to the process-wide redactor (what log output goes through).
pub fn remember(r: &Redactor) {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(r);
}

/// `text` redacted with the process-wide redactor (every value any run of this process knew).
#[must_use]
pub fn redact_global(text: &str) -> String {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .redact(text)
        .into_owned()
}

/// A copy of the process-wide redactor: every value any run of this process knew.
#[must_use]
pub fn global() -> Redactor {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The password in a URL's userinfo (`scheme://user:password@host`), as written and with
/// `%XX` escapes undone (when they decode to text).
fn url_password(value: &str) -> Option<(String, String)> {
    let (_, rest) = value.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    if password.is_empty() {
        return None;
    }
    let bytes = password.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |k: usize| {
            bytes
                .get(k)
                .and_then(|b| char::from(*b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                decoded.push(h * 16 + l);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(decoded).unwrap_or_else(|_| password.to_owned());
    Some((password.to_owned(), decoded))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_replaced_plain_base64_and_escaped() {
        let mut r = Redactor::new();
        r.add_plain("CANARYstring5b2d8e44");
        r.add_base64("Q0FOQVJZZGF0YTdmM2E5YzFl"); // CANARYdata7f3a9c1e
        r.add_plain("pa\"ss\\word-1");
        let text = "observed \"CANARYstring5b2d8e44\" and Q0FOQVJZZGF0YTdmM2E5YzFl, \
            CANARYdata7f3a9c1e, Q0FOQVJZc3RyaW5nNWIyZDhlNDQ= and \"pa\\\"ss\\\\word-1\"";
        let out = r.redact(text);
        for leaked in ["CANARY", "Q0FOQVJZ", "ss\\\\word"] {
            assert!(!out.contains(leaked), "{out}");
        }
        assert_eq!(out.matches(REDACTED).count(), 5, "{out}");
    }

    #[test]
    fn connection_url_passwords_are_redacted_on_their_own() {
        let mut r = Redactor::new();
        r.add_base64("cmVkaXM6Ly86czNjciUyMWV0eEByZWRpczo2Mzc5LzA="); // redis://:s3cr%21etx@redis:6379/0
        r.add_plain("postgres://app:pgpass9@db:5432/app");
        let out = r.redact("AUTH s3cr!etx, s3cr%21etx; login pgpass9");
        assert_eq!(out, "AUTH <redacted>, <redacted>; login <redacted>");
        assert_eq!(url_password("redis://redis:6379/0"), None);
        assert_eq!(url_password("redis://:@redis"), None);
        assert_eq!(url_password("not a url: a:b@c"), None);
    }

    #[test]
    fn short_values_only_where_they_stand_alone() {
        let mut r = Redactor::new();
        r.add_plain("admin");
        r.add_plain("ab");
        let out = r.redact("grafana-admin-credentials: user \"admin\", ab, admin=admin");
        assert_eq!(
            out,
            "grafana-admin-credentials: user \"<redacted>\", ab, <redacted>=<redacted>"
        );
        // Its base64 form is distinctive enough to go wherever it appears.
        assert_eq!(r.redact("x YWRtaW4=y"), "x <redacted>y");
    }

    #[test]
    fn longer_values_first() {
        let mut r = Redactor::new();
        r.add_plain("secret-value");
        r.add_plain("secret-value-longer");
        assert_eq!(r.redact("secret-value-longer!"), "<redacted>!");
    }

    #[test]
    fn secret_objects_give_their_values() {
        let mut r = Redactor::new();
        r.add_secret_object(&json!({"kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "Q0FOQVJZZGF0YTdmM2E5YzFl"},
            "stringData": {"token": "CANARYstring5b2d8e44"}}));
        r.add_secret_object(&json!({"kind": "ConfigMap", "data": {"k": "not-a-secret-value"}}));
        assert_eq!(
            r.redact("CANARYdata7f3a9c1e CANARYstring5b2d8e44 not-a-secret-value"),
            "<redacted> <redacted> not-a-secret-value"
        );
    }

    #[test]
    fn outcomes_are_redacted_everywhere() {
        use crate::backend::BackendKind;
        use crate::run::outcome::{Context, Phase};
        let mut r = Redactor::new();
        r.add_plain("hunter2-canary");
        let leak = "hunter2-canary".to_owned();
        let mut outcome = ScenarioOutcome {
            id: "a/b".into(),
            backend: BackendKind::Sim,
            phases: Vec::new(),
            verdict: Verdict::Failed(Box::new(Failure {
                phase: Phase::Converge,
                summary: leak.clone(),
                expectation: leak.clone(),
                mismatches: vec![leak.clone()],
                context: Context {
                    events: vec![leak.clone()],
                    pods: vec![leak.clone()],
                    logs: vec![(leak.clone(), vec![leak.clone()])],
                    diagnostics: vec![leak.clone()],
                },
            })),
            recovery: crate::run::outcome::Recovery::default(),
            timeline: Some(Box::new(crate::run::outcome::Timeline {
                time_base: crate::run::outcome::TimeBase::Simulated,
                runs: vec![RunTimeline {
                    label: "fixed run".into(),
                    marks: vec![crate::run::outcome::Mark {
                        at: std::time::Duration::ZERO,
                        kind: crate::run::outcome::MarkKind::Failure,
                        label: leak.clone(),
                    }],
                    lanes: vec![crate::run::outcome::Lane {
                        kind: crate::run::outcome::LaneKind::Pod,
                        name: leak.clone(),
                        states: vec![crate::run::outcome::StateChange {
                            at: std::time::Duration::ZERO,
                            state: leak.clone(),
                            detail: leak.clone(),
                        }],
                        events: vec![crate::run::outcome::EventMark {
                            at: std::time::Duration::ZERO,
                            type_: "Warning".into(),
                            reason: leak.clone(),
                            message: leak.clone(),
                            count: 1,
                        }],
                    }],
                    ..RunTimeline::default()
                }],
            })),
            report: None,
        };
        r.redact_outcome(&mut outcome);
        assert!(!format!("{outcome:?}").contains("hunter2"), "{outcome:?}");
    }
}
