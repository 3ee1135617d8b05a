//! The Postgres layer against a real server started from the machine's binaries.
//!
//! Every test skips (printing why) where the binaries are missing. The server messages checked
//! here are produced by PostgreSQL itself; their sources are cited beside each.

#![expect(
    clippy::unwrap_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relapse::postgres::{
    Error, LocalProvider, Names, Provider, ServerError, SqlError, Tenant, TenantOptions,
};
use relapse::scenario::{
    HbaMethod, HbaRule, HbaType, PgDatabase, PgRole, Postgres, SqlErrorCheck, SqlErrorExpectation,
    SqlStep, SslMode,
};

/// The shared local provider, or `None` (with the reason printed) where it cannot run.
fn provider() -> Option<&'static LocalProvider> {
    let provider = LocalProvider::shared();
    match provider.check() {
        Ok(_) => Some(provider),
        Err(unavailable) => {
            eprintln!("skipped: {unavailable}");
            None
        }
    }
}

fn role(name: &str, createdb: bool) -> PgRole {
    PgRole {
        name: name.to_owned(),
        login: true,
        createdb,
        password_secret: None,
        create: true,
    }
}

fn database(name: &str, owner: &str) -> PgDatabase {
    PgDatabase {
        name: name.to_owned(),
        owner: Some(owner.to_owned()),
        create: true,
    }
}

fn spec(roles: Vec<PgRole>, databases: Vec<PgDatabase>, hba: Vec<HbaRule>) -> Postgres {
    Postgres {
        ssl: true,
        hba,
        roles,
        databases,
    }
}

/// The server's error from a failed attempt; panics with the outcome otherwise.
fn server_error<T: std::fmt::Debug>(outcome: Result<T, SqlError>) -> ServerError {
    match outcome {
        Err(SqlError::Server(error)) => *error,
        other => panic!("expected an error from the server, got {other:?}"),
    }
}

async fn exists(tenant: &Tenant, catalog: &str, name: &str) -> bool {
    let column = if catalog == "pg_roles" {
        "rolname"
    } else {
        "datname"
    };
    let admin = tenant.admin("postgres").await.unwrap();
    let rows = admin
        .query_text(&format!(
            "SELECT 1 FROM {catalog} WHERE {column} = '{name}'"
        ))
        .await
        .unwrap();
    !rows.is_empty()
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_databases() {
    let Some(provider) = provider() else { return };
    let options = TenantOptions::default();
    let alice = Tenant::create(
        provider,
        &spec(
            vec![role("iso_alice", false)],
            vec![database("iso_alice_db", "iso_alice")],
            vec![],
        ),
        &options,
    )
    .await
    .unwrap();
    let bob = Tenant::create(
        provider,
        &spec(
            vec![role("iso_bob", false)],
            vec![database("iso_bob_db", "iso_bob")],
            vec![],
        ),
        &options,
    )
    .await
    .unwrap();

    let own = alice
        .connect("iso_alice", "iso_alice_db", SslMode::Prefer)
        .await
        .unwrap();
    own.batch("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('alice only')")
        .await
        .unwrap();

    // Bob's role logs in (its hba line matches) but may not connect to Alice's database.
    // Source: src/backend/utils/init/postinit.c, "permission denied for database \"%s\"".
    let refused = server_error(
        bob.connect("iso_bob", "iso_alice_db", SslMode::Prefer)
            .await,
    );
    assert_eq!(refused.sqlstate, "42501");
    assert_eq!(
        refused.message,
        "permission denied for database \"iso_alice_db\""
    );
    assert_eq!(
        refused.detail.as_deref(),
        Some("User does not have CONNECT privilege.")
    );

    // Bob does not know Alice's password, and his own does not open her role.
    let wrong = server_error(
        bob.server()
            .connect(
                "iso_alice",
                bob.password("iso_bob"),
                "iso_alice_db",
                SslMode::Prefer,
            )
            .await,
    );
    assert_eq!(wrong.sqlstate, "28P01");

    // A role nobody holds matches no pg_hba.conf line at all.
    let nobody = server_error(
        bob.server()
            .connect("iso_mallory", None, "iso_alice_db", SslMode::Disable)
            .await,
    );
    assert_eq!(nobody.sqlstate, "28000");
    assert!(
        nobody
            .message
            .starts_with("no pg_hba.conf entry for host \"127.0.0.1\"")
    );

    // Bob's own database does not see Alice's table.
    let bobs = bob
        .connect("iso_bob", "iso_bob_db", SslMode::Prefer)
        .await
        .unwrap();
    let missing = server_error(bobs.query_text("SELECT v FROM secrets").await);
    assert_eq!(missing.sqlstate, "42P01");
    let rows = own.query_text("SELECT v FROM secrets").await.unwrap();
    assert_eq!(rows, vec![vec![Some("alice only".to_owned())]]);

    drop((own, bobs));
    alice.teardown().await.unwrap();
    bob.teardown().await.unwrap();
}

#[tokio::test]
async fn databases_come_from_private_spares() {
    let Some(provider) = provider() else { return };
    let server = provider.server(true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.spare_databases() == 0 {
        assert!(Instant::now() < deadline, "no spare database was made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let admin = server.admin("postgres").await.unwrap();
    let spares = admin
        .query_text("SELECT datname FROM pg_database WHERE datname LIKE 'relapse_spare_%'")
        .await
        .unwrap();
    let spare = spares[0][0].clone().unwrap();
    let tenant = Tenant::create(
        provider,
        &spec(
            vec![role("spare_app", false)],
            vec![database("spare_db", "spare_app")],
            vec![],
        ),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    // A spare is not a back door: the tenant's role may not connect to one.
    let refused = server_error(
        tenant
            .connect("spare_app", &spare, SslMode::Prefer)
            .await
            .map(|_| ()),
    );
    // The spare may have become spare_db meanwhile; then it no longer exists by that name.
    assert!(
        ["42501", "3D000"].contains(&refused.sqlstate.as_str()),
        "{refused:?}"
    );
    let rows = admin
        .query_text(
            "SELECT pg_get_userbyid(datdba)::text, \
             has_database_privilege('spare_app', 'spare_db', 'CONNECT')::text, \
             has_database_privilege('public', 'spare_db', 'CONNECT')::text \
             FROM pg_database WHERE datname = 'spare_db'",
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Some("spare_app".to_owned()),
            Some("true".to_owned()),
            Some("false".to_owned())
        ]]
    );
    let session = tenant
        .connect("spare_app", "spare_db", SslMode::Prefer)
        .await
        .unwrap();
    let tables = session
        .query_text("SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'")
        .await
        .unwrap();
    assert_eq!(tables, vec![vec![Some("0".to_owned())]]);
    session.batch("CREATE TABLE mine (x int)").await.unwrap();
    drop(session);
    tenant.teardown().await.unwrap();
}

#[tokio::test]
async fn role_without_createdb_cannot_create_databases_until_altered() {
    let Some(provider) = provider() else { return };
    let tenant = Tenant::create(
        provider,
        &spec(vec![role("backstage_cdb", false)], vec![], vec![]),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    let create = "CREATE DATABASE backstage_cdb_plugin_catalog";
    let session = tenant
        .connect("backstage_cdb", "postgres", SslMode::Prefer)
        .await
        .unwrap();
    // Source: src/backend/commands/dbcommands.c, createdb(): errcode
    // ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied to create database".
    let denied = server_error(session.batch(create).await);
    assert_eq!(denied.sqlstate, "42501");
    assert_eq!(denied.message, "permission denied to create database");

    // The same symptom through the scenario's own check type.
    let check = SqlErrorCheck {
        role: Some("backstage_cdb".to_owned()),
        database: None,
        sslmode: SslMode::Prefer,
        query: create.to_owned(),
        sqlstate: "42501".to_owned(),
        message: Some("permission denied to create database".to_owned()),
        within: None,
    };
    tenant.check(&check).await.unwrap().unwrap();

    // The fix, as a scenario step run by the administrator.
    tenant
        .run_step(&SqlStep {
            role: None,
            database: None,
            query: "ALTER ROLE backstage_cdb CREATEDB".to_owned(),
            expect_error: None,
        })
        .await
        .unwrap();
    let session = tenant
        .connect("backstage_cdb", "postgres", SslMode::Prefer)
        .await
        .unwrap();
    session.batch(create).await.unwrap();
    assert!(
        tenant.check(&check).await.unwrap().is_err(),
        "the symptom outlived the fix"
    );
    drop(session);

    // The database the application made belongs to the tenant's role and goes with it.
    let server = std::sync::Arc::clone(tenant.server());
    tenant.teardown().await.unwrap();
    let admin = server.admin("postgres").await.unwrap();
    let left = admin
        .query_text(
            "SELECT datname FROM pg_database WHERE datname = 'backstage_cdb_plugin_catalog' \
             UNION ALL SELECT rolname FROM pg_roles WHERE rolname = 'backstage_cdb'",
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn hostssl_rules_refuse_plain_connections_until_sslmode_require() {
    let Some(provider) = provider() else { return };
    let tenant = Tenant::create(
        provider,
        &spec(
            vec![role("rds_app", false)],
            vec![database("rds_app_db", "rds_app")],
            vec![HbaRule {
                kind: HbaType::Hostssl,
                database: "all".to_owned(),
                user: "all".to_owned(),
                method: HbaMethod::ScramSha256,
            }],
        ),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    // Source: src/backend/libpq/auth.c, ClientAuthentication(): "no pg_hba.conf entry for host
    // \"%s\", user \"%s\", database \"%s\", %s" with encryption_state "no encryption",
    // ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION (28000).
    let refused = server_error(
        tenant
            .connect("rds_app", "rds_app_db", SslMode::Disable)
            .await,
    );
    assert_eq!(refused.sqlstate, "28000");
    assert_eq!(
        refused.message,
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"rds_app\", database \"rds_app_db\", no encryption"
    );
    assert!(refused.while_connecting);

    let session = tenant
        .connect("rds_app", "rds_app_db", SslMode::Require)
        .await
        .unwrap();
    let rows = session
        .query_text("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    assert_eq!(rows, vec![vec![Some("true".to_owned())]]);
    drop(session);
    tenant.teardown().await.unwrap();
}

#[tokio::test]
async fn missing_role_fails_password_authentication_until_created() {
    let Some(provider) = provider() else { return };
    // Terraform wrote the Secret but never created the role: the scenario names the role and
    // database in its hba rule only, so they are reserved but not created.
    let tenant = Tenant::create(
        provider,
        &spec(
            vec![],
            vec![],
            vec![HbaRule {
                kind: HbaType::Host,
                database: "norole_db".to_owned(),
                user: "norole_app".to_owned(),
                method: HbaMethod::ScramSha256,
            }],
        ),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    assert!(tenant.password("norole_app").is_some());
    // Source: src/backend/libpq/auth.c, auth_failed(): uaSCRAM → "password authentication
    // failed for user \"%s\"", ERRCODE_INVALID_PASSWORD (28P01).
    let failed = server_error(
        tenant
            .connect("norole_app", "norole_db", SslMode::Prefer)
            .await,
    );
    assert_eq!(failed.sqlstate, "28P01");
    assert_eq!(
        failed.message,
        "password authentication failed for user \"norole_app\""
    );

    tenant
        .create_role(&role("norole_app", false))
        .await
        .unwrap();
    tenant
        .create_database(&database("norole_db", "norole_app"))
        .await
        .unwrap();
    let session = tenant
        .connect("norole_app", "norole_db", SslMode::Prefer)
        .await
        .unwrap();
    session.batch("SELECT 1").await.unwrap();
    drop(session);
    tenant.teardown().await.unwrap();
}

#[tokio::test]
async fn query_before_schema_fails_until_the_table_exists() {
    let Some(provider) = provider() else { return };
    let tenant = Tenant::create(
        provider,
        &spec(
            vec![role("temporal_pf", false)],
            vec![database("temporal_pf", "temporal_pf")],
            vec![],
        ),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    let preflight = SqlStep {
        role: Some("temporal_pf".to_owned()),
        database: Some("temporal_pf".to_owned()),
        query: "SELECT count(*) FROM namespace_metadata".to_owned(),
        // Source: src/backend/parser/parse_relation.c, parserOpenTable():
        // ERRCODE_UNDEFINED_TABLE (42P01), "relation \"%s\" does not exist".
        expect_error: Some(SqlErrorExpectation {
            sqlstate: "42P01".to_owned(),
            message: Some("relation \"namespace_metadata\" does not exist".to_owned()),
        }),
    };
    tenant.run_step(&preflight).await.unwrap();

    tenant
        .run_step(&SqlStep {
            role: Some("temporal_pf".to_owned()),
            database: Some("temporal_pf".to_owned()),
            query: "CREATE TABLE namespace_metadata (partition_id int PRIMARY KEY, \
                    notification_version bigint NOT NULL);\n\
                    INSERT INTO namespace_metadata VALUES (54321, 1);"
                .to_owned(),
            expect_error: None,
        })
        .await
        .unwrap();
    // The expectation no longer holds: the step reports the mismatch with what it saw.
    let failure = tenant.run_step(&preflight).await.unwrap_err();
    assert_eq!(
        failure.to_string(),
        "expected SQLSTATE 42P01 with a message containing \
         \"relation \\\"namespace_metadata\\\" does not exist\", observed success"
    );
    tenant.teardown().await.unwrap();
}

#[tokio::test]
async fn teardown_removes_roles_databases_and_rules() {
    let Some(provider) = provider() else { return };
    let tenant = Tenant::create(
        provider,
        &spec(
            vec![role("gone_app", true)],
            vec![database("gone_db", "gone_app")],
            vec![],
        ),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    let debug = format!("{tenant:?}");
    let password = tenant.password("gone_app").unwrap().expose().to_owned();
    assert!(
        !debug.contains(&password),
        "password in debug output: {debug}"
    );
    let session = tenant
        .connect("gone_app", "gone_db", SslMode::Prefer)
        .await
        .unwrap();
    assert!(exists(&tenant, "pg_roles", "gone_app").await);
    assert!(exists(&tenant, "pg_database", "gone_db").await);
    let server = std::sync::Arc::clone(tenant.server());
    // Teardown terminates the session still open.
    tenant.teardown().await.unwrap();
    assert!(session.batch("SELECT 1").await.is_err());
    let admin = server.admin("postgres").await.unwrap();
    let left = admin
        .query_text(
            "SELECT rolname FROM pg_roles WHERE rolname = 'gone_app' \
             UNION ALL SELECT datname FROM pg_database WHERE datname = 'gone_db'",
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
    let hba = std::fs::read_to_string(server.data_dir().unwrap().join("data/pg_hba.conf")).unwrap();
    assert!(!hba.contains("gone_app"), "{hba}");
    // The password no longer opens anything.
    let refused = server_error(
        server
            .connect(
                "gone_app",
                Some(&relapse::postgres::Secret::new(password)),
                "gone_db",
                SslMode::Prefer,
            )
            .await,
    );
    assert_eq!(refused.sqlstate, "28000");
}

#[tokio::test]
async fn dropping_a_tenant_without_teardown_still_cleans_up() {
    let Some(provider) = provider() else { return };
    let tenant = Tenant::create(
        provider,
        &spec(
            vec![role("dropped_app", false)],
            vec![database("dropped_db", "dropped_app")],
            vec![],
        ),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    let server = std::sync::Arc::clone(tenant.server());
    drop(tenant);
    let admin = server.admin("postgres").await.unwrap();
    let left = admin
        .query_text(
            "SELECT rolname FROM pg_roles WHERE rolname = 'dropped_app' \
             UNION ALL SELECT datname FROM pg_database WHERE datname = 'dropped_db'",
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn a_held_name_makes_the_next_scenario_wait() {
    let Some(provider) = provider() else { return };
    let first = Tenant::create(
        provider,
        &spec(vec![role("lease_app", false)], vec![], vec![]),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    let impatient = TenantOptions {
        reserve: Names::default(),
        lease_timeout: Duration::from_millis(200),
        other_servers: false,
    };
    let busy = Tenant::create(
        provider,
        &spec(vec![role("lease_app", false)], vec![], vec![]),
        &impatient,
    )
    .await
    .unwrap_err();
    assert!(matches!(busy, Error::NamesBusy { .. }), "{busy}");
    // The waiting scenario touched nothing of the holder's.
    assert!(exists(&first, "pg_roles", "lease_app").await);
    first
        .connect("lease_app", "postgres", SslMode::Prefer)
        .await
        .unwrap();
    first.teardown().await.unwrap();
    let second = Tenant::create(
        provider,
        &spec(vec![role("lease_app", false)], vec![], vec![]),
        &impatient,
    )
    .await
    .unwrap();
    second.teardown().await.unwrap();
}

#[tokio::test]
async fn a_held_name_moves_the_next_scenario_to_another_server() {
    let Some(provider) = provider() else { return };
    let role_spec = || spec(vec![role("spill_app", false)], vec![], vec![]);
    let first = Tenant::create(provider, &role_spec(), &TenantOptions::default())
        .await
        .unwrap();
    let second = Tenant::create(provider, &role_spec(), &TenantOptions::default())
        .await
        .unwrap();
    assert_ne!(first.server().port(), second.server().port());
    assert_ne!(first.server().data_dir(), second.server().data_dir());
    // The same role name on both, each with its own password, each a real login.
    for tenant in [&first, &second] {
        let session = tenant
            .connect("spill_app", "postgres", SslMode::Require)
            .await
            .unwrap();
        let rows = session.query_text("SELECT current_user").await.unwrap();
        assert_eq!(rows, vec![vec![Some("spill_app".to_owned())]]);
    }
    // One tenant's password is not the other's: the servers' roles are distinct.
    let crossed = second
        .server()
        .connect(
            "spill_app",
            first.password("spill_app"),
            "postgres",
            SslMode::Require,
        )
        .await;
    assert_eq!(server_error(crossed).sqlstate, "28P01");
    let other_server = std::sync::Arc::clone(second.server());
    first.teardown().await.unwrap();
    second.teardown().await.unwrap();
    // Torn down on the other server too, which keeps running for later overflows.
    let admin = other_server.admin("postgres").await.unwrap();
    let left = admin
        .query_text("SELECT rolname FROM pg_roles WHERE rolname = 'spill_app'")
        .await
        .unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn a_server_without_tls_refuses_sslmode_require() {
    let Some(provider) = provider() else { return };
    let mut plain = spec(
        vec![role("plain_app", false)],
        vec![database("plain_db", "plain_app")],
        vec![],
    );
    plain.ssl = false;
    let tenant = Tenant::create(provider, &plain, &TenantOptions::default())
        .await
        .unwrap();
    assert!(!tenant.server().tls());
    // The client gives up before the server says anything.
    let refused = tenant
        .connect("plain_app", "plain_db", SslMode::Require)
        .await
        .unwrap_err();
    assert!(matches!(refused, SqlError::Connect { .. }), "{refused:?}");
    tenant
        .connect("plain_app", "plain_db", SslMode::Prefer)
        .await
        .unwrap();
    tenant.teardown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Nothing outlives the test process
// ---------------------------------------------------------------------------------------------

const CHILD_ENV: &str = "RELAPSE_POSTGRES_TEST_CHILD";

/// Not a test of its own: the cleanup tests run this binary again with only this function,
/// which starts a server, reports it and then ends the way [`CHILD_ENV`] says.
#[tokio::test]
#[ignore = "helper for the process cleanup tests; runs only in a child process"]
async fn helper_child_starts_a_server_and_ends() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let server = LocalProvider::shared().server(true).await.unwrap();
    println!(
        "READY {} {}",
        server.pid().unwrap(),
        server.data_dir().unwrap().display()
    );
    match mode.as_str() {
        "panic" => panic!("the test process panics with a server running"),
        // Wait for the parent's signal.
        _ => tokio::time::sleep(Duration::from_secs(120)).await,
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's bookkeeping remains.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Processes whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(&needle) && alive(e.file_name().to_string_lossy().parse().ok()?))
                .then_some(cmdline)
        })
        .collect()
}

fn run_child_and_check_cleanup(mode: &str, signal: Option<i32>) {
    if provider().is_none() {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_child_starts_a_server_and_ends",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints the test's name on the same line first.
            if let Some(at) = line.find("READY ") {
                let _ = sender.send(line[at + "READY ".len()..].to_owned());
            }
        }
    });
    let ready = receiver.recv_timeout(Duration::from_secs(120));
    let Ok(ready) = ready else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child never reported a running server");
    };
    let (pid, dir) = ready.split_once(' ').unwrap();
    let (pid, dir): (u32, PathBuf) = (pid.parse().unwrap(), PathBuf::from(dir));
    assert!(alive(pid), "postmaster {pid} is not running");
    assert!(dir.exists());

    if let Some(signal) = signal {
        // SAFETY: plain kill(2) of our own child.
        unsafe {
            libc::kill(i32::try_from(child.id()).unwrap(), signal);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the child did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        let (running, dir_left, users) = (alive(pid), dir.exists(), processes_using(&dir));
        if !running && !dir_left && users.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the child ended ({mode}): postmaster running {running}, directory left \
             {dir_left}, processes {users:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_panicking_test_process_leaves_no_server_behind() {
    run_child_and_check_cleanup("panic", None);
}

#[test]
fn an_interrupted_test_process_leaves_no_server_behind() {
    run_child_and_check_cleanup("signal", Some(libc::SIGINT));
}

#[test]
fn a_killed_test_process_leaves_no_server_behind() {
    run_child_and_check_cleanup("signal", Some(libc::SIGKILL));
}

/// The `ppid` and `comm` of a process.
fn parent_and_name(pid: &str) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, name))
}

fn pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes working in `dir` or below it (initdb and its standalone backend).
fn processes_in(dir: &Path) -> Vec<String> {
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
                && pid.parse().is_ok_and(alive)
        })
        .collect()
}

/// `/dev/shm/PostgreSQL.<n>` segments the processes map, with their inodes.
fn segments_of(pids: &[String]) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for pid in pids {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        for line in maps.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() == 6 && cols[5].starts_with("/dev/shm/PostgreSQL.") {
                out.push((PathBuf::from(cols[5]), cols[4].parse().unwrap_or(0)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Killing the test process while `initdb` runs: its standalone backend (which writes its PID
/// negated into postmaster.pid) is stopped, its shared memory and the directory are removed.
#[test]
fn a_test_process_killed_during_initdb_leaves_nothing_behind() {
    if provider().is_none() {
        return;
    }
    for trial in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_child_starts_a_server_and_ends",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "signal")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The child's initdb and the server directory its `-D` names.
        let deadline = Instant::now() + Duration::from_secs(60);
        let dir = loop {
            let found = pids().into_iter().find_map(|pid| {
                let (ppid, name) = parent_and_name(&pid)?;
                if ppid != child.id() || name != "initdb" {
                    return None;
                }
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let args: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let data = args.iter().skip_while(|a| *a != "-D").nth(1)?;
                Path::new(data).parent().map(Path::to_path_buf)
            });
            if let Some(dir) = found {
                break dir;
            }
            assert!(Instant::now() < deadline, "trial {trial}: no initdb seen");
            std::thread::sleep(Duration::from_millis(5));
        };
        // Into the bootstrap, when the backend has its shared memory.
        std::thread::sleep(Duration::from_millis(200));
        let segments = segments_of(&processes_in(&dir));
        // SAFETY: plain kill(2) of our own child.
        unsafe {
            libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGKILL);
        }
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let users = processes_in(&dir);
            let left: Vec<&PathBuf> = segments
                .iter()
                .filter(|(path, ino)| inode(path) == Some(*ino))
                .map(|(path, _)| path)
                .collect();
            if users.is_empty() && !dir.exists() && left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "trial {trial}: processes {users:?}, directory left {}, shared memory left {left:?}",
                dir.exists()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test]
async fn leftovers_of_a_dead_process_are_reclaimed_but_foreign_objects_are_not() {
    let Some(provider) = provider() else { return };
    let server = provider.server(true).await.unwrap();
    let admin = server.admin("postgres").await.unwrap();
    admin
        .batch(
            "CREATE ROLE leftover_app LOGIN; \
             COMMENT ON ROLE leftover_app IS 'relapse tenant 999999-1'; \
             CREATE ROLE foreign_app LOGIN",
        )
        .await
        .unwrap();
    let reclaimed = Tenant::create(
        provider,
        &spec(vec![role("leftover_app", true)], vec![], vec![]),
        &TenantOptions::default(),
    )
    .await
    .unwrap();
    // The role was made anew, with this tenant's settings and password.
    reclaimed
        .connect("leftover_app", "postgres", SslMode::Prefer)
        .await
        .unwrap()
        .batch("CREATE DATABASE leftover_app_made")
        .await
        .unwrap();
    reclaimed.teardown().await.unwrap();

    let refused = Tenant::create(
        provider,
        &spec(vec![role("foreign_app", false)], vec![], vec![]),
        &TenantOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "postgres role \"foreign_app\" already exists on the server and was not created by relapse"
    );
    let still_there = admin
        .query_text("SELECT rolname FROM pg_roles WHERE rolname = 'foreign_app'")
        .await
        .unwrap();
    assert_eq!(still_there.len(), 1, "a foreign role was dropped");
    admin.batch("DROP ROLE foreign_app").await.unwrap();
}

#[tokio::test]
async fn an_existing_server_by_url_hosts_tenants_but_not_hba_rules() {
    let Some(provider) = provider() else { return };
    let local = provider.server(true).await.unwrap();
    // The local server's administrator logs in over its unix socket.
    let url = format!(
        "host={} port={} user=postgres dbname=postgres",
        local.data_dir().unwrap().display(),
        local.port()
    );
    let by_url = relapse::postgres::UrlProvider::new(url, "the test");
    let server = by_url.server(false).await.unwrap();
    assert!(!server.manages_hba());
    assert!(
        server.version().starts_with("PostgreSQL "),
        "{}",
        server.version()
    );

    let mut with_rules = spec(
        vec![role("url_app", false)],
        vec![],
        vec![HbaRule {
            kind: HbaType::Hostssl,
            database: "all".to_owned(),
            user: "all".to_owned(),
            method: HbaMethod::ScramSha256,
        }],
    );
    with_rules.ssl = false;
    let unsupported = Tenant::create(&by_url, &with_rules, &TenantOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(unsupported, Error::Unsupported { .. }),
        "{unsupported}"
    );

    let mut plain = spec(
        vec![role("url_app", false)],
        vec![database("url_db", "url_app")],
        vec![],
    );
    plain.ssl = false;
    let tenant = Tenant::create(&by_url, &plain, &TenantOptions::default())
        .await
        .unwrap();
    assert!(exists(&tenant, "pg_roles", "url_app").await);
    assert!(exists(&tenant, "pg_database", "url_db").await);
    let admin = tenant.admin("postgres").await.unwrap();
    tenant.teardown().await.unwrap();
    let left = admin
        .query_text(
            "SELECT rolname FROM pg_roles WHERE rolname = 'url_app' \
             UNION ALL SELECT datname FROM pg_database WHERE datname = 'url_db'",
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn the_container_provider_reports_a_missing_docker_daemon() {
    if relapse::postgres::docker_daemon().is_ok() {
        eprintln!("skipped: a docker daemon is running; this test covers its absence");
        return;
    }
    let error = relapse::postgres::ContainerProvider::new()
        .server(true)
        .await
        .unwrap_err();
    let Error::Unavailable(unavailable) = &error else {
        panic!("expected unavailable, got {error}");
    };
    assert_eq!(unavailable.provider, "container");
    assert!(unavailable.reason.contains("docker daemon"), "{error}");
}

/// A role's generated password reaches the application through its Secret, but never the
/// snapshot, the failure report, the JUnit file or the logs.
#[test]
fn generated_passwords_never_reach_snapshots_reports_or_logs() {
    use k8s_openapi::api::core::v1::Secret;
    use relapse::backend::sim::SimBackend;
    use relapse::run::outcome::Verdict;
    use relapse::run::snapshot_file::UpdateMode;
    use relapse::run::{SnapshotSettings, run_scenario_keeping};
    use relapse::scenario::Step;

    if provider().is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut loaded = relapse::scenario::load(&root.join("postgres/role-never-created.yaml"), &root)
        .unwrap_or_else(|e| panic!("{}", relapse::scenario::render(&e)));
    loaded.scenario.counterfactual.enabled = false;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Whatever the run did, the password is the one in the kept cluster's Secret.
    let password_of = |cluster: &dyn relapse::backend::Cluster| {
        runtime.block_on(async {
            let secrets: kube::Api<Secret> = kube::Api::namespaced(cluster.client(), "backstage");
            let secret = secrets.get("backstage-secrets").await.unwrap();
            let bytes = secret.data.unwrap()["POSTGRES_PASSWORD"].0.clone();
            String::from_utf8(bytes).unwrap()
        })
    };

    // No snapshot recorded here: the run passes every phase but the snapshot, which is written
    // for review; the failed run's cluster is kept.
    let snapshots = tempfile::tempdir().unwrap();
    let settings = SnapshotSettings {
        dir: snapshots.path().to_path_buf(),
        mode: UpdateMode::New,
    };
    let (outcome, kept) = runtime.block_on(run_scenario_keeping(
        &SimBackend::default(),
        &loaded,
        &settings,
    ));
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected the snapshot phase to fail: {:?}", outcome.verdict)
    };
    let cluster = kept.expect("the failed run's cluster");
    let password = password_of(cluster.as_ref());
    assert_eq!(password.len(), 32);
    let snapshot = std::fs::read_to_string(
        snapshots
            .path()
            .join("postgres__role-never-created.snap.new"),
    )
    .unwrap();
    assert!(
        snapshot.contains("POSTGRES_PASSWORD: <redacted>"),
        "{snapshot}"
    );
    assert!(!snapshot.contains(&password));
    let details = relapse::report::failure_details(&outcome, f);
    assert!(!details.contains(&password));
    drop(cluster);

    // Without the fix the run fails in converge, with events, pod statuses and log tails.
    loaded.scenario.fix = vec![Step::Sleep(relapse::scenario::Duration::from_secs(1))];
    let (outcome, kept) = runtime.block_on(run_scenario_keeping(
        &SimBackend::default(),
        &loaded,
        &settings,
    ));
    let Verdict::Failed(f) = &outcome.verdict else {
        panic!("expected converge to fail: {:?}", outcome.verdict)
    };
    let cluster = kept.expect("the failed run's cluster");
    let password = password_of(cluster.as_ref());
    let details = relapse::report::failure_details(&outcome, f);
    let junit = relapse::report::junit_xml(std::slice::from_ref(&outcome)).unwrap();
    assert!(
        details.contains("password authentication failed for user \"backstage_app\""),
        "{details}"
    );
    assert!(!details.contains(&password) && !junit.contains(&password));
    let logs = runtime.block_on(async {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(cluster.client(), "backstage");
        let mut text = String::new();
        for pod in pods.list(&Default::default()).await.unwrap().items {
            let name = pod.metadata.name.unwrap();
            text.push_str(&pods.logs(&name, &Default::default()).await.unwrap());
        }
        text
    });
    assert!(logs.contains("password authentication failed"), "{logs}");
    assert!(!logs.contains(&password));
}

/// The processes descended from `root`.
fn descendants(root: u32) -> Vec<String> {
    let all: Vec<(String, u32)> = pids()
        .into_iter()
        .filter_map(|pid| Some((pid.clone(), parent_and_name(&pid)?.0)))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid) in &all {
            if *ppid == parent && !out.contains(pid) {
                out.push(pid.clone());
                if let Ok(p) = pid.parse() {
                    frontier.push(p);
                }
            }
        }
    }
    out
}

/// The `relapse-pg-*` server directories the processes work in.
fn server_dirs(pids: &[String]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = pids
        .iter()
        .filter_map(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).ok())
        .filter_map(|cwd| {
            cwd.ancestors()
                .find(|a| {
                    a.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("relapse-pg-"))
                })
                .map(Path::to_path_buf)
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// `relapse run` of `scenario` with a private TMPDIR and HOME.
fn spawn_run(scenario: &Path, tmp: &Path, home: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_relapse"))
        .arg("run")
        .arg(scenario)
        .args(["--snapshots", &home.join("snapshots").to_string_lossy()])
        .env("TMPDIR", tmp)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .env_remove("RELAPSE_POSTGRES_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// One uninterrupted run: how long it takes, and from when until when a server of it is alive.
fn calibrate(scenario: &Path) -> (Duration, Duration, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut child = spawn_run(scenario, tmp.path(), home.path());
    let (mut first, mut last) = (None, Duration::ZERO);
    while child.try_wait().unwrap().is_none() {
        if !server_dirs(&descendants(child.id())).is_empty() {
            first.get_or_insert(start.elapsed());
            last = start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the run hangs");
        std::thread::sleep(Duration::from_millis(2));
    }
    let total = start.elapsed();
    assert!(first.is_some(), "no server of the run was seen alive");
    let first = first.unwrap();
    (total, first, last.max(first))
}

/// `relapse run` of a Postgres scenario killed with SIGKILL at 20 points: ten spread over a
/// whole run, ten over the time a server of the run is alive (initdb, the server's start, the
/// scenario's phases), both measured on an uninterrupted run first. Each time, once the
/// watchdog is done, no process works in a server directory of the run, none of those
/// directories is left, no shared memory segment a server of the run mapped is left, nothing is
/// left in the run's TMPDIR and no kubeconfig was written.
#[test]
fn relapse_run_killed_at_twenty_points_leaves_nothing_behind() {
    if provider().is_none() {
        return;
    }
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/postgres/backstage-role-without-createdb.yaml");
    // Twice: the first run of a process tree may still build what later runs reuse.
    calibrate(&scenario);
    let (total, alive_from, alive_to) = calibrate(&scenario);
    let points: Vec<Duration> = (0..10u32)
        .map(|i| total * i / 10)
        .chain((0..10u32).map(|i| alive_from + (alive_to - alive_from) * i / 10))
        .collect();
    let mut killed_with_postgres_running = 0;
    for point in points {
        let tmp = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let mut child = spawn_run(&scenario, tmp.path(), home.path());
        let deadline = Instant::now() + point;
        let mut dirs = Vec::new();
        let mut segments = Vec::new();
        let mut running;
        loop {
            let family = descendants(child.id());
            dirs.extend(server_dirs(&family));
            segments.extend(segments_of(&family));
            running = !server_dirs(&family).is_empty();
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        dirs.sort();
        dirs.dedup();
        segments.sort();
        segments.dedup();
        if running {
            killed_with_postgres_running += 1;
        }
        // SAFETY: plain kill(2) of our own child.
        unsafe {
            libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGKILL);
        }
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let users: Vec<String> = dirs.iter().flat_map(|d| processes_in(d)).collect();
            let dirs_left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
            let entries: Vec<PathBuf> = std::fs::read_dir(tmp.path())
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            let left: Vec<&PathBuf> = segments
                .iter()
                .filter(|(path, ino)| inode(path) == Some(*ino))
                .map(|(path, _)| path)
                .collect();
            // The snapshots directory is the user's; anything else there would be a kubeconfig.
            let kubeconfigs = std::fs::read_dir(home.path())
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| e.file_name() != "snapshots")
                        .count()
                })
                .unwrap_or(0);
            if users.is_empty()
                && dirs_left.is_empty()
                && entries.is_empty()
                && left.is_empty()
                && kubeconfigs == 0
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "killed after {point:?}: processes {users:?}, server directories {dirs_left:?}, left in TMPDIR {entries:?}, shared memory {left:?}, {kubeconfigs} files in HOME"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!(
        "run {total:?}, a server alive from {alive_from:?} to {alive_to:?}; kills with a server of the run alive: {killed_with_postgres_running} of 20"
    );
    // Not vacuous: kills land while a server of the run is alive.
    assert!(
        killed_with_postgres_running >= 3,
        "only {killed_with_postgres_running} of 20 kills found a server of the run alive"
    );
}
