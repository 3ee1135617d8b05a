//! Per-scenario wall time and simulated time on the sim backend, and a repeatability check.
//!
//! `cargo bench --bench scenarios [-- RUNS] [FILTER]` runs every shipped scenario (or those whose
//! id contains FILTER) RUNS times (default 20) through the whole lifecycle (counterfactual
//! included, snapshot compared with the committed one) and prints min/median/max wall time,
//! the simulated time, and whether every run gave the same verdict and the same
//! converged-state snapshot; then each phase's median wall time per scenario.

use std::path::Path;
use std::time::{Duration, Instant};

use relapse::backend::sim::SimBackend;
use relapse::run::outcome::Verdict;
use relapse::run::snapshot_file::UpdateMode;
use relapse::run::{SnapshotSettings, run_scenario};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runs: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20);
    let filter = args.iter().find(|a| a.parse::<usize>().is_err());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (scenarios, errors) = match relapse::scenario::load_suite(&[root.join("scenarios")]) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", relapse::scenario::render(&e));
            std::process::exit(2);
        }
    };
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{}", relapse::scenario::render(e));
        }
        std::process::exit(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("failed to start a runtime: {e}");
            std::process::exit(2);
        }
    };
    let settings = SnapshotSettings {
        dir: root.join("snapshots"),
        mode: UpdateMode::No,
    };
    println!(
        "{runs} runs per scenario (lifecycle + counterfactual + snapshot comparison), sim backend"
    );
    println!(
        "{:42} {:>10} {:>10} {:>10} {:>12}  repeatable",
        "scenario", "min", "median", "max", "cluster time"
    );
    let mut all_ok = true;
    let mut phase_rows = Vec::new();
    for s in scenarios
        .iter()
        .filter(|s| filter.is_none_or(|f| s.id.contains(f.as_str())))
    {
        let mut phase_walls: Vec<(String, Vec<Duration>)> = Vec::new();
        let mut walls = Vec::with_capacity(runs);
        let mut verdicts = Vec::with_capacity(runs);
        let mut cluster = Duration::ZERO;
        for _ in 0..runs {
            let started = Instant::now();
            let outcome = runtime.block_on(run_scenario(&SimBackend::default(), s, &settings));
            walls.push(started.elapsed());
            cluster = outcome.cluster_time();
            let times: Vec<Duration> = outcome.phases.iter().map(|p| p.cluster_time).collect();
            for p in &outcome.phases {
                let name = p.phase.to_string();
                match phase_walls.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, walls)) => walls.push(p.wall_time),
                    None => phase_walls.push((name, vec![p.wall_time])),
                }
            }
            verdicts.push((format!("{:?}", outcome.verdict), times));
        }
        walls.sort();
        let mut cells = Vec::new();
        for (name, mut w) in phase_walls {
            w.sort();
            cells.push(format!(
                "{name} {}",
                relapse::report::human_duration(w[w.len() / 2])
            ));
        }
        phase_rows.push((s.id.clone(), cells.join(", ")));
        // Same verdict (snapshot compared each time) and the same simulated phase timeline.
        let repeatable = verdicts.windows(2).all(|w| w[0] == w[1]);
        let passed = verdicts
            .first()
            .is_some_and(|v| v.0 == format!("{:?}", Verdict::Passed));
        all_ok &= repeatable && passed;
        println!(
            "{:42} {:>10} {:>10} {:>10} {:>12}  {}",
            s.id,
            relapse::report::human_duration(walls[0]),
            relapse::report::human_duration(walls[walls.len() / 2]),
            relapse::report::human_duration(walls[walls.len() - 1]),
            relapse::report::human_duration(cluster),
            if !passed {
                "FAILED"
            } else if repeatable {
                "yes"
            } else {
                "NO"
            }
        );
    }
    println!("\nmedian wall time per phase");
    for (id, cells) in &phase_rows {
        println!("{id:42} {cells}");
    }
    if !all_ok {
        std::process::exit(1);
    }
}
