//! How long the Postgres layer takes: a provider's server start next to a raw `initdb` plus
//! server start (on disk, in `/tmp`) measured in the same run, a second server for scenarios
//! whose names collide, and one scenario's tenant setup and teardown.
//!
//! `cargo bench --bench postgres` prints a table; it needs PostgreSQL server binaries.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relapse::postgres::{
    LocalOptions, LocalProvider, Provider, Tenant, TenantOptions, find_binaries,
};
use relapse::scenario::{HbaMethod, HbaRule, HbaType, PgDatabase, PgRole, Postgres};

const STARTS: usize = 3;
const TENANTS: usize = 20;

struct Row {
    what: String,
    samples: Vec<Duration>,
}

fn main() {
    let binaries = match find_binaries(
        std::env::var_os("RELAPSE_POSTGRES_BIN")
            .as_deref()
            .map(Path::new),
    ) {
        Ok(binaries) => binaries,
        Err(unavailable) => {
            println!("skipped: {unavailable}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();

    let (initdb, start): (Vec<_>, Vec<_>) = (0..STARTS)
        .map(|_| raw_initdb_and_start(&binaries.initdb, &binaries.postgres))
        .unzip();
    rows.push(Row {
        what: "raw initdb".into(),
        samples: initdb.clone(),
    });
    rows.push(Row {
        what: "raw postgres start until ready".into(),
        samples: start.clone(),
    });
    rows.push(Row {
        what: "raw initdb + start".into(),
        samples: initdb.iter().zip(&start).map(|(a, b)| *a + *b).collect(),
    });

    let (mut provider_starts, mut other_starts) = (Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let provider = LocalProvider::new(LocalOptions::default());
        let began = Instant::now();
        runtime
            .block_on(provider.server(true))
            .expect("provider start");
        provider_starts.push(began.elapsed());
        let began = Instant::now();
        runtime
            .block_on(provider.other_server(true, 1))
            .expect("another server")
            .expect("the local provider has more servers");
        other_starts.push(began.elapsed());
        runtime.block_on(provider.shutdown()).expect("shutdown");
    }
    rows.push(Row {
        what: "provider start (initdb, cert, start)".into(),
        samples: provider_starts,
    });
    rows.push(Row {
        what: "another server for colliding names (copy, cert, start)".into(),
        samples: other_starts,
    });

    let provider = LocalProvider::new(LocalOptions::default());
    let server = runtime
        .block_on(provider.server(true))
        .expect("provider start");
    let version = server.version().to_owned();
    let shapes = [
        ("tenant: 1 role", shape(1, 0, false)),
        ("tenant: 1 role, 1 database", shape(1, 1, false)),
        ("tenant: 2 roles, 2 databases, hba rules", shape(2, 2, true)),
    ];
    for ((what, spec), warm) in shapes
        .iter()
        .flat_map(|shape| [(shape, true), (shape, false)])
    {
        if spec.databases.is_empty() && !warm {
            continue;
        }
        let (mut setup, mut teardown) = (Vec::new(), Vec::new());
        for _ in 0..TENANTS {
            if warm {
                // Between scenarios the pool refills in the background; wait for that here,
                // outside the measurement.
                let deadline = Instant::now() + Duration::from_secs(30);
                while server.spare_databases() < spec.databases.len() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let began = Instant::now();
            let tenant = runtime
                .block_on(Tenant::create(&provider, spec, &TenantOptions::default()))
                .expect("tenant setup");
            setup.push(began.elapsed());
            let began = Instant::now();
            runtime
                .block_on(tenant.teardown())
                .expect("tenant teardown");
            teardown.push(began.elapsed());
        }
        let pool = match (spec.databases.is_empty(), warm) {
            (true, _) => "",
            (false, true) => ", spares ready",
            (false, false) => ", back to back",
        };
        rows.push(Row {
            what: format!("{what}: setup{pool}"),
            samples: setup,
        });
        rows.push(Row {
            what: format!("{what}: teardown{pool}"),
            samples: teardown,
        });
    }
    runtime.block_on(provider.shutdown()).expect("shutdown");

    println!(
        "{version}, {} cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<62} {:>3} {:>9} {:>9} {:>9}",
        "step", "n", "median", "p90", "max"
    );
    for row in rows {
        let mut samples = row.samples;
        samples.sort();
        let pick = |q: f64| {
            let index = ((samples.len() - 1) as f64 * q).round() as usize;
            format!("{:.1} ms", samples[index].as_secs_f64() * 1000.0)
        };
        println!(
            "{:<62} {:>3} {:>9} {:>9} {:>9}",
            row.what,
            samples.len(),
            pick(0.5),
            pick(0.9),
            pick(1.0)
        );
    }
}

fn shape(roles: usize, databases: usize, hba: bool) -> Postgres {
    Postgres {
        ssl: true,
        hba: if hba {
            vec![HbaRule {
                kind: HbaType::Hostssl,
                database: "all".to_owned(),
                user: "all".to_owned(),
                method: HbaMethod::ScramSha256,
            }]
        } else {
            Vec::new()
        },
        roles: (0..roles)
            .map(|i| PgRole {
                name: format!("bench_role_{i}"),
                login: true,
                createdb: false,
                password_secret: None,
                create: true,
            })
            .collect(),
        databases: (0..databases)
            .map(|i| PgDatabase {
                name: format!("bench_db_{i}"),
                owner: Some(format!("bench_role_{}", i % roles.max(1))),
                create: true,
            })
            .collect(),
    }
}

/// `initdb` and a server start with the provider's settings, by hand: the baseline.
fn raw_initdb_and_start(initdb: &Path, postgres: &Path) -> (Duration, Duration) {
    let dir = tempfile::Builder::new()
        .prefix("relapse-bench-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let path = dir.path();
    let as_user = |command: &mut Command| {
        command
            .current_dir(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            command.uid(65534).gid(65534);
        }
    };
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).expect("chown");
    }
    let began = Instant::now();
    let mut command = Command::new(initdb);
    command.arg("-D").arg(path.join("data")).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    as_user(&mut command);
    assert!(command.status().expect("initdb").success(), "initdb failed");
    let initdb_time = began.elapsed();

    let began = Instant::now();
    let mut command = Command::new(postgres);
    command.arg("-D").arg(path.join("data")).args([
        "-c",
        "listen_addresses=",
        "-c",
        &format!("unix_socket_directories={}", path.display()),
        "-c",
        "fsync=off",
    ]);
    as_user(&mut command);
    let mut child = command.spawn().expect("postgres");
    let pid_file = path.join("data/postmaster.pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = std::fs::read_to_string(&pid_file)
            .is_ok_and(|text| text.lines().nth(7).is_some_and(|l| l.trim() == "ready"));
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    let start_time = began.elapsed();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let _ = child.wait();
    (initdb_time, start_time)
}
