//! One scenario's share of a server: its roles, databases and `pg_hba.conf` rules.
//!
//! # Isolation
//!
//! Scenarios use the names they declare, unchanged: a symptom such as
//! `password authentication failed for user "backstage"` reads on the shared server exactly as
//! it did in production, and scenario files need no templating. The price is that two scenarios
//! declaring the same name cannot hold it at the same time. A tenant therefore *leases* every
//! role and database name it declares (or mentions in its `hba` rules, or is told to reserve)
//! with session-level advisory locks held by one administrator session for its whole life:
//!
//! - a scenario whose names are in use moves to another server of the provider if it has one
//!   ([`Provider::other_server`]; the local provider starts up to three more, from a copy of
//!   its first server's fresh data directory), otherwise waits (up to
//!   [`TenantOptions::lease_timeout`]) instead of trampling the other's objects; scenarios with
//!   disjoint names run in parallel on one server;
//! - the locks live on the server, so they also order several test processes sharing one
//!   server (the `url` provider), and they vanish when a process dies (its session closes);
//! - objects left behind by a dead process are recognised by their comment (`relapse tenant
//!   ...`) and dropped by the next lease holder; a same-named object without that comment is
//!   never touched ([`Error::Foreign`]).
//!
//! While names are leased, no two tenants' `pg_hba.conf` blocks match the same connection (see
//! `hba.rs`), and `CONNECT` on a tenant's databases is revoked from `PUBLIC` and granted to the
//! tenant's roles only: one scenario's roles can neither log in to nor read another's
//! databases. The shared `postgres` database stays reachable (applications connect there to
//! create databases); since PostgreSQL 15 nobody but its owner may create objects in it.
//!
//! Names a scenario creates through its own SQL without declaring them are not leased and not
//! dropped at teardown, except databases owned by its roles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::scenario::{
    Expectation, Need, PgDatabase, PgRole, Postgres, Scenario, SqlCheck, SqlErrorCheck, SqlStep,
    SslMode, Step, ValueSource,
};

use super::server::{admin_err, ident, literal};
use super::sql::{ErrorMismatch, ExpectedError, ServerError, Session, SqlError, on_io_runtime};
use super::{Error, Provider, Secret, Server, hba};

/// Advisory-lock class (first key) for role names; the second key is `hashtext(name)`.
const ROLE_LOCK_CLASS: i32 = 0x5245_4c01;
/// Advisory-lock class for database names.
const DATABASE_LOCK_CLASS: i32 = 0x5245_4c02;
/// The comment on every role and database a tenant creates starts with this.
const MARKER: &str = "relapse tenant ";
/// How long teardown from `Drop` may take.
const DROP_TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Role and database names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Database names.
    pub databases: BTreeSet<String>,
}

impl Names {
    /// The names a `postgres:` section declares: its roles, databases (and their owners) and
    /// the names its `hba` rules mention.
    #[must_use]
    pub fn declared(spec: &Postgres) -> Self {
        let mut names = Self::default();
        for role in &spec.roles {
            names.roles.insert(role.name.clone());
        }
        for database in &spec.databases {
            names.databases.insert(database.name.clone());
            if let Some(owner) = &database.owner {
                names.roles.insert(owner.clone());
            }
        }
        for rule in &spec.hba {
            if rule.user != "all" {
                names.roles.insert(rule.user.clone());
            }
            if rule.database != "all" {
                names.databases.insert(rule.database.clone());
            }
        }
        names
    }

    /// Every name a scenario uses: [`Names::declared`], plus the roles and databases of its
    /// `sql` steps and `sqlError` checks and the literal users and databases of its images'
    /// Postgres requirements. `postgres` (the shared maintenance database) is left out.
    #[must_use]
    pub fn of_scenario(scenario: &Scenario) -> Self {
        let mut names = scenario
            .postgres
            .as_ref()
            .map_or_else(Self::default, Self::declared);
        let steps = scenario
            .setup
            .iter()
            .chain(&scenario.break_.steps)
            .chain(&scenario.fix);
        let expectations = scenario
            .break_
            .symptoms
            .iter()
            .chain(&scenario.converge.expect)
            .chain(steps.clone().filter_map(|step| match step {
                Step::Expect(expectation) => Some(expectation),
                _ => None,
            }));
        for step in steps {
            if let Step::Sql(sql) = step {
                names.add(sql.role.as_deref(), sql.database.as_deref());
            }
        }
        for expectation in expectations {
            match expectation {
                Expectation::SqlError(check) => {
                    names.add(check.role.as_deref(), check.database.as_deref());
                }
                Expectation::Sql(check) => {
                    names.add(check.role.as_deref(), check.database.as_deref());
                }
                _ => {}
            }
        }
        for behaviour in scenario.images.values() {
            for requirement in &behaviour.requires {
                if let Need::Postgres(need) = &requirement.needs {
                    let literal = |source: &ValueSource| match source {
                        ValueSource::Value(value) => Some(value.clone()),
                        ValueSource::Env(_) => None,
                    };
                    names.add(
                        literal(&need.user).as_deref(),
                        literal(&need.database).as_deref(),
                    );
                }
            }
        }
        names.databases.remove("postgres");
        names
    }

    fn add(&mut self, role: Option<&str>, database: Option<&str>) {
        if let Some(role) = role {
            self.roles.insert(role.to_owned());
        }
        if let Some(database) = database {
            self.databases.insert(database.to_owned());
        }
    }

    fn extend(&mut self, other: &Self) {
        self.roles.extend(other.roles.iter().cloned());
        self.databases.extend(other.databases.iter().cloned());
    }

    fn validate(&self) -> Result<(), Error> {
        let roles = self.roles.iter().map(|n| ("role", n));
        let databases = self.databases.iter().map(|n| ("database", n));
        for (kind, name) in roles.chain(databases) {
            let reason = if name.is_empty() {
                Some("it is empty")
            } else if name.len() > 63 {
                Some("it is longer than 63 bytes")
            } else if name.contains('"') {
                Some("it contains a double quote")
            } else if name.chars().any(char::is_control) {
                Some("it contains a control character")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Error::InvalidName {
                    kind,
                    name: name.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// How a tenant is set up.
#[derive(Debug, Clone)]
pub struct TenantOptions {
    /// Names to lease besides the declared ones (e.g. [`Names::of_scenario`]).
    pub reserve: Names,
    /// How long to wait for names another scenario holds.
    pub lease_timeout: Duration,
    /// Whether to move to another server of the provider when the names are held on the
    /// first, rather than wait for them there.
    pub other_servers: bool,
}

impl Default for TenantOptions {
    fn default() -> Self {
        Self {
            reserve: Names::default(),
            lease_timeout: Duration::from_secs(120),
            other_servers: true,
        }
    }
}

/// A failed `sql` step.
#[derive(Debug, thiserror::Error)]
pub enum StepFailure {
    /// Running the SQL failed (and no error was expected), or the server could not be reached.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// The step expected an error and got something else.
    #[error(transparent)]
    Mismatch(#[from] ErrorMismatch),
    /// `{{password:<role>}}` names a role the scenario does not declare.
    #[error("sql step uses the password of role {0:?}, which the scenario does not declare")]
    UnknownRole(String),
}

/// Where a password placeholder starts.
const PASSWORD_OPEN: &str = "{{password:";

/// Expands `{{password:<role>}}` placeholders; `Err(role)` for an unknown role.
fn expand_passwords(sql: &str, passwords: &BTreeMap<String, Secret>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find(PASSWORD_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + PASSWORD_OPEN.len()..];
        let Some(end) = after.find("}}") else {
            // Not a placeholder after all: keep the text as written.
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let role = after[..end].trim();
        let password = passwords.get(role).ok_or_else(|| role.to_owned())?;
        out.push_str(&literal(&password.scram_verifier()));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One scenario's roles, databases and access rules on a shared server; dropped again by
/// [`Tenant::teardown`] or, failing that, when the value is dropped.
pub struct Tenant {
    server: Arc<Server>,
    id: u64,
    names: Names,
    passwords: Arc<BTreeMap<String, Secret>>,
    /// Holds the name leases; closing it releases them.
    lease: Option<Session>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .field("names", &self.names)
            .field("passwords", &self.passwords)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    /// Leases the scenario's names, creates its roles (with generated passwords) and
    /// databases, and installs its `pg_hba.conf` rules, on the provider's server with or
    /// without TLS as the scenario says (or on another such server, see the module
    /// documentation).
    ///
    /// # Errors
    /// [`Error::Unavailable`] / [`Error::Unsupported`] when the provider cannot serve the
    /// scenario (the trial should be ignored with that reason); [`Error::InvalidName`],
    /// [`Error::Foreign`], [`Error::NamesBusy`] and [`Error::Admin`] otherwise. Nothing is
    /// left behind on error.
    pub async fn create(
        provider: &dyn Provider,
        spec: &Postgres,
        options: &TenantOptions,
    ) -> Result<Self, Error> {
        let mut names = Names::declared(spec);
        names.extend(&options.reserve);
        names.databases.remove("postgres");
        names.validate()?;
        let first = provider.server(spec.ssl).await?;
        if !spec.hba.is_empty() && !first.manages_hba() {
            return Err(Error::Unsupported {
                provider: first.provider(),
                what: "scenario pg_hba.conf rules on a server it does not administer".to_owned(),
            });
        }
        let (server, lease) = lease_somewhere(provider, first, spec.ssl, &names, options).await?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let passwords: BTreeMap<String, Secret> = names
            .roles
            .iter()
            .map(|role| (role.clone(), Secret::generate()))
            .collect();
        let mut tenant = Self {
            server: Arc::clone(&server),
            id,
            names,
            passwords: Arc::new(passwords),
            lease: None,
        };
        tenant.lease = Some(tenant.setup(spec.clone(), lease).await?);
        Ok(tenant)
    }

    /// Creates the tenant's objects as `admin`, the session holding its leases.
    async fn setup(&self, spec: Postgres, admin: Session) -> Result<Session, Error> {
        let server = Arc::clone(&self.server);
        let names = self.names.clone();
        let passwords = Arc::clone(&self.passwords);
        let marker = self.marker();
        let id = self.id;
        on_io_runtime(async move {
            // The session holding the leases is an administrator's: it does the work too.
            // Until the names are checked, nothing may be dropped: the objects could be
            // another scenario's, or not ours at all.
            clear_leftovers(&admin, &names).await?;
            let made = async {
                for role in spec.roles.iter().filter(|r| r.create) {
                    create_role(&admin, role, &passwords, &marker, &names).await?;
                }
                for database in spec.databases.iter().filter(|d| d.create) {
                    create_database(&server, &admin, database, &marker, &names).await?;
                }
                server
                    .set_hba_block(id, Some(hba::tenant_lines(&spec.hba, &names.roles)))
                    .await
            }
            .await;
            if let Err(error) = made {
                // Still holding the leases: drop what was made; the setup error is what counts.
                let _ = cleanup(Arc::clone(&server), &admin, names, id).await;
                return Err(error);
            }
            Ok(admin)
        })
        .await
        .map_err(Error::Task)?
    }

    fn marker(&self) -> String {
        format!("{MARKER}{}-{}", std::process::id(), self.id)
    }

    /// The server this tenant lives on.
    #[must_use]
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// The names this tenant holds.
    #[must_use]
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The generated password of a role this tenant holds (whether or not the role exists yet:
    /// a fix that creates it uses the same one).
    #[must_use]
    pub fn password(&self, role: &str) -> Option<&Secret> {
        self.passwords.get(role)
    }

    /// Connects over TCP as one of the tenant's roles with its generated password (or with no
    /// password for a role the tenant does not hold), as a program in the cluster would.
    ///
    /// # Errors
    /// [`SqlError::Server`] with the server's refusal.
    pub async fn connect(
        &self,
        role: &str,
        database: &str,
        sslmode: SslMode,
    ) -> Result<Session, SqlError> {
        self.server
            .connect(role, self.password(role), database, sslmode)
            .await
    }

    /// Connects as the server's administrator.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn admin(&self, database: &str) -> Result<Session, SqlError> {
        self.server.admin(database).await
    }

    /// Creates one of the tenant's roles (a fix that "creates the missing role").
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name the tenant does not hold; [`Error::Admin`] when the
    /// server refuses.
    pub async fn create_role(&self, role: &PgRole) -> Result<(), Error> {
        self.require_held("role", &role.name, &self.names.roles)?;
        let admin = self.lease()?;
        create_role(admin, role, &self.passwords, &self.marker(), &self.names).await
    }

    /// Creates one of the tenant's databases.
    ///
    /// # Errors
    /// As [`Tenant::create_role`].
    pub async fn create_database(&self, database: &PgDatabase) -> Result<(), Error> {
        self.require_held("database", &database.name, &self.names.databases)?;
        let admin = self.lease()?;
        create_database(&self.server, admin, database, &self.marker(), &self.names).await
    }

    /// The administrator session holding the leases, which also does the tenant's own
    /// administration (a new session would cost a backend start each time).
    fn lease(&self) -> Result<&Session, Error> {
        self.lease.as_ref().ok_or(Error::Released)
    }

    fn require_held(
        &self,
        kind: &'static str,
        name: &str,
        held: &BTreeSet<String>,
    ) -> Result<(), Error> {
        if held.contains(name) {
            Ok(())
        } else {
            Err(Error::InvalidName {
                kind,
                name: name.to_owned(),
                reason: "the scenario does not reserve it",
            })
        }
    }

    async fn session_for(
        &self,
        role: Option<&str>,
        database: Option<&str>,
        sslmode: SslMode,
    ) -> Result<Session, SqlError> {
        let database = database.unwrap_or("postgres");
        match role {
            Some(role) => self.connect(role, database, sslmode).await,
            None => self.admin(database).await,
        }
    }

    /// Runs a scenario's `sql` step: its statements one by one in one session, as the given
    /// role (default the administrator) on the given database (default `postgres`).
    ///
    /// # Errors
    /// [`StepFailure::Sql`] when the SQL fails and no error was expected (or the server cannot
    /// be reached); [`StepFailure::Mismatch`] when an expected error did not happen.
    pub async fn run_step(&self, step: &SqlStep) -> Result<(), StepFailure> {
        let query = self
            .with_passwords(&step.query)
            .map_err(StepFailure::UnknownRole)?;
        let outcome = async {
            let session = self
                .session_for(
                    step.role.as_deref(),
                    step.database.as_deref(),
                    SslMode::Prefer,
                )
                .await?;
            session.run_script(&query).await
        }
        .await;
        match &step.expect_error {
            None => outcome.map_err(StepFailure::Sql),
            Some(expected) => match ExpectedError::from(expected).verify(outcome)? {
                Ok(_) => Ok(()),
                Err(mismatch) => Err(mismatch.into()),
            },
        }
    }

    /// Evaluates a `sqlError` symptom once: connects as the check says, runs its query and
    /// compares the server's error with the expected one.
    ///
    /// # Errors
    /// The outer error when the check could not be made (server unreachable); the inner
    /// [`ErrorMismatch`] when the server did not answer with the expected error (yet).
    pub async fn check(
        &self,
        check: &SqlErrorCheck,
    ) -> Result<Result<ServerError, ErrorMismatch>, SqlError> {
        let outcome = async {
            let session = self
                .session_for(
                    check.role.as_deref(),
                    check.database.as_deref(),
                    check.sslmode,
                )
                .await?;
            session.run_script(&check.query).await
        }
        .await;
        ExpectedError::from(check).verify(outcome)
    }

    /// Evaluates a `sql` expectation once: connects as it says and runs its query.
    ///
    /// # Errors
    /// The server's refusal or error, or an unreachable server.
    pub async fn query(&self, check: &SqlCheck) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        let session = self
            .session_for(
                check.role.as_deref(),
                check.database.as_deref(),
                check.sslmode,
            )
            .await?;
        if check.query.trim().is_empty() {
            return Ok(Vec::new());
        }
        session.query_text(&check.query).await
    }

    /// Replaces every `{{password:<role>}}` in `sql` with the quoted SCRAM verifier of that
    /// role's generated password.
    fn with_passwords(&self, sql: &str) -> Result<String, String> {
        expand_passwords(sql, &self.passwords)
    }

    /// Drops everything the tenant made (terminating its sessions first), removes its
    /// `pg_hba.conf` rules and releases its names.
    ///
    /// # Errors
    /// When something could not be dropped; the rest was still attempted.
    pub async fn teardown(mut self) -> Result<(), Error> {
        let Some(lease) = self.lease.take() else {
            return Ok(());
        };
        let (server, names, id) = (Arc::clone(&self.server), self.names.clone(), self.id);
        // Releases the leases when done, whatever happened: the session closes with `lease`.
        on_io_runtime(async move { cleanup(server, &lease, names, id).await })
            .await
            .map_err(Error::Task)?
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        // Not torn down (a panic, an early return): clean up from a fresh thread, which may
        // block, unlike the async context this is probably dropped in.
        let (server, names, id) = (Arc::clone(&self.server), self.names.clone(), self.id);
        let cleaner = std::thread::Builder::new()
            .name("relapse-tenant-teardown".to_owned())
            .spawn(move || {
                let _ = super::sql::block_on_io(async move {
                    tokio::time::timeout(DROP_TEARDOWN_TIMEOUT, cleanup(server, &lease, names, id))
                        .await
                });
            });
        if let Ok(cleaner) = cleaner {
            let _ = cleaner.join();
        }
    }
}

/// The server to make the tenant on and the session holding its names there: the first server
/// on which all names are free at once, else (after the provider's other servers) the first
/// server as soon as they are free there.
async fn lease_somewhere(
    provider: &dyn Provider,
    first: Arc<Server>,
    tls: bool,
    names: &Names,
    options: &TenantOptions,
) -> Result<(Arc<Server>, Session), Error> {
    if options.other_servers {
        let mut server = Arc::clone(&first);
        for n in 1.. {
            let attempt = Arc::clone(&server);
            let names_now = names.clone();
            let held = on_io_runtime(async move { try_lease_names(&attempt, &names_now).await })
                .await
                .map_err(Error::Task)??;
            if let Some(lease) = held {
                return Ok((server, lease));
            }
            match provider.other_server(tls, n).await {
                Ok(Some(other)) => server = other,
                Ok(None) => break,
                Err(error) => {
                    // Waiting on the first server still works.
                    let mut text = error.to_string();
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        text.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    tracing::warn!("could not start another postgres server: {text}");
                    break;
                }
            }
        }
    }
    let (server, names, timeout) = (Arc::clone(&first), names.clone(), options.lease_timeout);
    let lease = on_io_runtime(async move { lease_names(&server, &names, timeout).await })
        .await
        .map_err(Error::Task)??;
    Ok((first, lease))
}

/// Leases all names on `server` if all are free now; `None` (holding nothing) otherwise.
async fn try_lease_names(server: &Server, names: &Names) -> Result<Option<Session>, Error> {
    let lease = server
        .admin("postgres")
        .await
        .map_err(admin_err("connect as administrator"))?;
    let (classes, keys) = lock_keys(names);
    // Trying never waits, so the order does not matter; every free name is taken, and a
    // refused one releases them all with the session.
    let all = lease
        .with_client(move |client| async move {
            let row = client
                .query_one(
                    "SELECT coalesce(bool_and(pg_try_advisory_lock(class, hashtext(name))), true) \
                     FROM unnest($1::int4[], $2::text[]) AS k(class, name)",
                    &[&classes, &keys],
                )
                .await?;
            Ok(row.get::<_, bool>(0))
        })
        .await
        .map_err(admin_err("lease the scenario's names"))?;
    Ok(all.then_some(lease))
}

/// The advisory-lock keys of `names`: roles, then databases, each sorted.
fn lock_keys(names: &Names) -> (Vec<i32>, Vec<String>) {
    names
        .roles
        .iter()
        .map(|n| (ROLE_LOCK_CLASS, n.clone()))
        .chain(
            names
                .databases
                .iter()
                .map(|n| (DATABASE_LOCK_CLASS, n.clone())),
        )
        .unzip()
}

async fn lease_names(server: &Server, names: &Names, timeout: Duration) -> Result<Session, Error> {
    let mut lease = server
        .admin("postgres")
        .await
        .map_err(admin_err("connect as administrator"))?;
    lease.set_timeout(timeout + Duration::from_secs(10));
    lease
        .batch(&format!("SET lock_timeout = {}", timeout.as_millis()))
        .await
        .map_err(admin_err("set lock_timeout"))?;
    // One fixed order (roles, then databases, each sorted) so that two tenants never wait for
    // each other crosswise.
    let (classes, keys) = lock_keys(names);
    for (class, name) in classes.into_iter().zip(keys) {
        let locked = lease
            .with_client(move |client| async move {
                client
                    .execute(
                        "SELECT pg_advisory_lock($1, hashtext($2))",
                        &[&class, &name],
                    )
                    .await
            })
            .await;
        match locked {
            Ok(_) => {}
            // 55P03 lock_not_available: lock_timeout expired.
            Err(SqlError::Server(error)) if error.sqlstate == "55P03" => {
                return Err(Error::NamesBusy {
                    names: names
                        .roles
                        .iter()
                        .chain(&names.databases)
                        .cloned()
                        .collect(),
                    timeout,
                });
            }
            Err(error) => return Err(admin_err("lease the scenario's names")(error)),
        }
    }
    Ok(lease)
}

/// Names the tenant holds that exist already: the ones a crashed process left (dropped now)
/// and the ones someone else made (refused).
async fn clear_leftovers(admin: &Session, names: &Names) -> Result<(), Error> {
    let roles: Vec<String> = names.roles.iter().cloned().collect();
    let databases: Vec<String> = names.databases.iter().cloned().collect();
    let existing = admin
        .with_client(move |client| async move {
            client
                .query(
                    "SELECT 'role', rolname::text, coalesce(shobj_description(oid, 'pg_authid'), '') \
                     FROM pg_roles WHERE rolname = ANY($1) \
                     UNION ALL \
                     SELECT 'database', datname::text, coalesce(shobj_description(oid, 'pg_database'), '') \
                     FROM pg_database WHERE datname = ANY($2)",
                    &[&roles, &databases],
                )
                .await
        })
        .await
        .map_err(admin_err("look for existing roles and databases"))?;
    if existing.is_empty() {
        return Ok(());
    }
    for row in &existing {
        let (kind, name, comment): (&str, String, String) = (row.get(0), row.get(1), row.get(2));
        if !comment.starts_with(MARKER) {
            return Err(Error::Foreign {
                kind: if kind == "role" { "role" } else { "database" },
                name,
            });
        }
    }
    drop_everything(admin, names).await
}

async fn create_role(
    admin: &Session,
    role: &PgRole,
    passwords: &BTreeMap<String, Secret>,
    marker: &str,
    names: &Names,
) -> Result<(), Error> {
    let mut sql = format!(
        "CREATE ROLE {} WITH {} {}",
        ident(&role.name),
        if role.login { "LOGIN" } else { "NOLOGIN" },
        if role.createdb {
            "CREATEDB"
        } else {
            "NOCREATEDB"
        },
    );
    if let Some(password) = passwords.get(&role.name) {
        // The verifier, not the password: statements can end up in server logs.
        sql.push_str(&format!(
            " PASSWORD {}",
            literal(&password.scram_verifier())
        ));
    }
    sql.push_str(&format!(
        "; COMMENT ON ROLE {} IS {}",
        ident(&role.name),
        literal(marker)
    ));
    for database in existing_databases(admin, names).await? {
        sql.push_str(&format!(
            "; GRANT CONNECT ON DATABASE {} TO {}",
            ident(&database),
            ident(&role.name)
        ));
    }
    admin
        .batch(&sql)
        .await
        .map_err(admin_err(format!("create role {:?}", role.name)))
}

async fn create_database(
    server: &Arc<Server>,
    admin: &Session,
    database: &PgDatabase,
    marker: &str,
    names: &Names,
) -> Result<(), Error> {
    let action = || format!("create database {:?}", database.name);
    let name = ident(&database.name);
    let mut renamed = false;
    if let Some(spare) = server.take_spare() {
        let mut adopt = format!("ALTER DATABASE {} RENAME TO {name}", ident(&spare));
        if let Some(owner) = &database.owner {
            adopt.push_str(&format!(
                "; ALTER DATABASE {name} OWNER TO {}",
                ident(owner)
            ));
        }
        // One transaction: a failed owner change leaves the spare as it was.
        renamed = admin.batch(&adopt).await.is_ok();
    }
    if !renamed {
        let mut create = format!("CREATE DATABASE {name}");
        if let Some(owner) = &database.owner {
            create.push_str(&format!(" OWNER {}", ident(owner)));
        }
        // CREATE DATABASE cannot share a transaction with anything else.
        admin.batch(&create).await.map_err(admin_err(action()))?;
    }
    let mut sql = format!(
        "COMMENT ON DATABASE {name} IS {}; REVOKE CONNECT ON DATABASE {name} FROM PUBLIC",
        literal(marker)
    );
    for role in existing_roles(admin, names).await? {
        sql.push_str(&format!(
            "; GRANT CONNECT ON DATABASE {name} TO {}",
            ident(&role)
        ));
    }
    admin.batch(&sql).await.map_err(admin_err(action()))
}

async fn existing_roles(admin: &Session, names: &Names) -> Result<Vec<String>, Error> {
    let roles: Vec<String> = names.roles.iter().cloned().collect();
    admin
        .with_client(move |client| async move {
            let rows = client
                .query(
                    "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
                    &[&roles],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
        })
        .await
        .map_err(admin_err("list the scenario's roles"))
}

async fn existing_databases(admin: &Session, names: &Names) -> Result<Vec<String>, Error> {
    let databases: Vec<String> = names.databases.iter().cloned().collect();
    admin
        .with_client(move |client| async move {
            let rows = client
                .query(
                    "SELECT datname::text FROM pg_database WHERE datname = ANY($1)",
                    &[&databases],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
        })
        .await
        .map_err(admin_err("list the scenario's databases"))
}

/// Removes the tenant's rules, then drops its objects as `admin` (the lease holder).
async fn cleanup(server: Arc<Server>, admin: &Session, names: Names, id: u64) -> Result<(), Error> {
    // Rules first, so nothing logs in again while objects are dropped.
    let rules = server.set_hba_block(id, None).await;
    let dropped = drop_everything(admin, &names).await;
    rules.and(dropped)
}

/// Drops the tenant's databases (and any database its roles own), then its roles.
async fn drop_everything(admin: &Session, names: &Names) -> Result<(), Error> {
    let roles: Vec<String> = names.roles.iter().cloned().collect();
    let databases: Vec<String> = names.databases.iter().cloned().collect();
    let (roles_for_query, databases_for_query) = (roles.clone(), databases.clone());
    let doomed = admin
        .with_client(move |client| async move {
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE usename = ANY($1) AND pid <> pg_backend_pid()",
                    &[&roles_for_query],
                )
                .await?;
            let rows = client
                .query(
                    "SELECT datname::text FROM pg_database WHERE datname = ANY($2) \
                     OR datdba IN (SELECT oid FROM pg_roles WHERE rolname = ANY($1))",
                    &[&roles_for_query, &databases_for_query],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<String>>())
        })
        .await
        .map_err(admin_err("find the scenario's sessions and databases"))?;
    let mut first_error = None;
    for database in doomed {
        // WITH (FORCE) terminates the database's remaining sessions (PostgreSQL 13+).
        let dropped = admin
            .batch(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(&database)
            ))
            .await
            .map_err(admin_err(format!("drop database {database:?}")));
        if let Err(error) = dropped {
            first_error.get_or_insert(error);
        }
    }
    let present = existing_roles(admin, names).await?;
    if !present.is_empty() {
        let list = present
            .iter()
            .map(|r| ident(r))
            .collect::<Vec<_>>()
            .join(", ");
        let dropped = admin
            .batch(&format!("DROP OWNED BY {list}; DROP ROLE {list}"))
            .await
            .map_err(admin_err(format!("drop roles {present:?}")));
        if let Err(error) = dropped {
            first_error.get_or_insert(error);
        }
    }
    let _ = roles;
    let _ = databases;
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{HbaMethod, HbaRule, HbaType};

    #[test]
    fn declared_names_include_owners_and_hba_names() {
        let spec = Postgres {
            ssl: true,
            hba: vec![HbaRule {
                kind: HbaType::Hostssl,
                database: "temporal".to_owned(),
                user: "temporal_admin".to_owned(),
                method: HbaMethod::ScramSha256,
            }],
            roles: vec![PgRole {
                name: "backstage".to_owned(),
                login: true,
                createdb: false,
                password_secret: None,
                create: true,
            }],
            databases: vec![PgDatabase {
                name: "catalog".to_owned(),
                owner: Some("catalog_owner".to_owned()),
                create: true,
            }],
        };
        let names = Names::declared(&spec);
        assert_eq!(
            names.roles.iter().map(String::as_str).collect::<Vec<_>>(),
            ["backstage", "catalog_owner", "temporal_admin"]
        );
        assert_eq!(
            names
                .databases
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["catalog", "temporal"]
        );
    }

    #[test]
    fn password_placeholders_become_verifiers_and_never_the_password() {
        let secret = Secret::new("s3cret-value");
        let passwords = BTreeMap::from([("app".to_owned(), secret.clone())]);
        let sql = expand_passwords(
            "CREATE ROLE app LOGIN PASSWORD {{password:app}}; SELECT '{{x}}'",
            &passwords,
        )
        .unwrap();
        assert!(!sql.contains("s3cret-value"), "{sql}");
        assert!(!sql.contains("{{password"), "{sql}");
        assert!(
            sql.starts_with("CREATE ROLE app LOGIN PASSWORD 'SCRAM-SHA-256$4096:"),
            "{sql}"
        );
        assert!(sql.ends_with("; SELECT '{{x}}'"), "{sql}");
        assert_eq!(
            expand_passwords("ALTER ROLE x PASSWORD {{password: other }}", &passwords),
            Err("other".to_owned())
        );
        assert_eq!(
            expand_passwords("SELECT '{{password:app'", &passwords).unwrap(),
            "SELECT '{{password:app'"
        );
    }

    #[test]
    fn invalid_names_are_refused_with_the_reason() {
        let mut names = Names::default();
        names.roles.insert("bad\"name".to_owned());
        let error = names.validate().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid postgres role name \"bad\\\"name\": it contains a double quote"
        );
        let mut names = Names::default();
        names.databases.insert("x".repeat(64));
        assert!(names.validate().is_err());
        let mut names = Names::default();
        names.databases.insert("plugin_catalog".to_owned());
        names.validate().unwrap();
    }
}
