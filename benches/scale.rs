//! Scale: Deployments × 5 replicas on a few nodes, from apply to all Ready on the simulated
//! cluster. Prints wall time, simulated time and peak resident memory.
//!
//! `cargo bench --bench scale [-- DEPLOYMENTS [--nodes NODES]]`: 200 Deployments (1,000 pods)
//! on 5 nodes by default; `-- 2000 --nodes 50` is the 10,000-pod run.

#![expect(
    clippy::expect_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::time::Instant;

/// The command's allocator (src/main.rs), so that the figures are the command's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, PostParams};
use relapse::scenario::{Capacity, ClusterShape, Node};
use relapse::sim::engine::{EngineConfig, SimEngine};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nodes_at = args.iter().position(|a| a == "--nodes");
    let node_count: usize = nodes_at
        .and_then(|i| args.get(i + 1))
        .map_or(5, |n| n.parse().expect("--nodes takes a number"));
    let deployments: usize = args
        .iter()
        .enumerate()
        .filter(|(i, _)| nodes_at.is_none_or(|at| *i != at + 1))
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(200);
    let nodes = (1..=node_count)
        .map(|i| Node {
            name: format!("node-{i}"),
            arch: relapse::scenario::Arch::Amd64,
            roles: vec![relapse::scenario::NodeRole::Worker],
            labels: Default::default(),
            taints: Vec::new(),
            capacity: Capacity {
                cpu: "64".into(),
                memory: "256Gi".into(),
                pods: 250,
                ..Capacity::default()
            },
        })
        .collect();
    let cluster = ClusterShape {
        nodes,
        ..ClusterShape::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let started = Instant::now();
    let config = EngineConfig::new(cluster, Default::default()).expect("config");
    let mut engine = SimEngine::new(config).expect("engine");
    let client = engine.client();
    let api: Api<Deployment> = Api::namespaced(client, "default");
    runtime.block_on(async {
        for i in 0..deployments {
            let d: Deployment = serde_json::from_value(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("app-{i:03}")},
                "spec": {"replicas": 5, "selector": {"matchLabels": {"app": format!("app-{i:03}")}},
                         "template": {"metadata": {"labels": {"app": format!("app-{i:03}")}},
                                      "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0",
                                               "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}
            }))
            .expect("deployment");
            api.create(&PostParams::default(), &d).await.expect("create");
        }
    });
    let applied = started.elapsed();
    let start = engine.now();
    let deadline = start + jiff::SignedDuration::from_hours(1);
    let ready = loop {
        let list = runtime
            .block_on(api.list(&ListParams::default()))
            .expect("list");
        let ready = list
            .items
            .iter()
            .filter(|d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(5))
            .count();
        if ready == deployments || engine.now() >= deadline {
            break ready;
        }
        engine.advance(deadline).expect("engine advances");
    };
    let wall = started.elapsed();
    let simulated = engine.now().duration_since(start);
    println!("{deployments} Deployments x 5 replicas on {node_count} nodes");
    println!(
        "  apply (create through the in-process API): {:.2} s",
        applied.as_secs_f64()
    );
    println!(
        "  apply to all Ready: wall {:.2} s, simulated {:.1} s, {ready}/{deployments} ready",
        wall.as_secs_f64(),
        simulated.as_secs_f64()
    );
    if let Some(mib) = peak_rss_mib() {
        println!("  peak resident memory: {mib:.0} MiB");
    }
    // Ends without tearing the cluster down: freeing every object is no part of the measure
    // and would add a tenth to the CPU time that `/usr/bin/time` reports.
    std::process::exit(i32::from(ready != deployments));
}
