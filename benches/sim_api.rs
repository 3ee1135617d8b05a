//! Throughput and footprint of the simulated API server: `cargo bench --bench sim_api`.
//!
//! Prints start time, create/get/list/watch rates in-process and over TLS, and the memory
//! held by 10,000 objects. Numbers are measurements, not assertions.

#![expect(
    clippy::unwrap_used,
    reason = "a failed setup step in a test or benchmark aborts it with its message"
)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use relapse::sim::SimCluster;
use relapse::sim::store::WriteOptions;
use serde_json::json;

fn rss_bytes() -> u64 {
    // /proc/self/statm: size resident shared ... in pages.
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn rate(n: usize, took: Duration) -> String {
    format!(
        "{:>9.0}/s  ({n} in {:.1} ms)",
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e3
    )
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "bench"}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

async fn measure(label: &str, client: Client, n: usize) {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let start = Instant::now();
    for i in 0..n {
        api.create(&PostParams::default(), &cm(&format!("{label}-{i}")))
            .await
            .unwrap();
    }
    println!("{label:<11} create      {}", rate(n, start.elapsed()));
    let start = Instant::now();
    for i in 0..n {
        api.get(&format!("{label}-{i}")).await.unwrap();
    }
    println!("{label:<11} get         {}", rate(n, start.elapsed()));
    let lists = 20;
    let start = Instant::now();
    let mut items = 0;
    for _ in 0..lists {
        items = api.list(&ListParams::default()).await.unwrap().items.len();
    }
    println!(
        "{label:<11} list        {} of {items} objects",
        rate(lists, start.elapsed())
    );
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let writer = api.clone();
    let prefix = format!("{label}-w");
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for i in 0..n {
            writer
                .create(&PostParams::default(), &cm(&format!("{prefix}{i}")))
                .await
                .unwrap();
        }
    });
    let mut seen = 0;
    while seen < n {
        match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
            Ok(Some(Ok(WatchEvent::Added(_)))) => seen += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    producer.await.unwrap();
    println!(
        "{label:<11} watch       {} events (create + deliver)",
        rate(seen, start.elapsed())
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let starts = 50;
        let t = Instant::now();
        for _ in 0..starts {
            drop(SimCluster::start());
        }
        println!("sim start              {:.2} ms each (mean of {starts})", t.elapsed().as_secs_f64() * 1e3 / f64::from(starts));
        let cluster = SimCluster::start();
        let t = Instant::now();
        let endpoint = cluster.serve_tls().await.unwrap();
        println!("tls endpoint up        {:.2} ms (certificates + bind)", t.elapsed().as_secs_f64() * 1e3);

        measure("in-process", cluster.client(), 2000).await;
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&endpoint.kubeconfig_yaml().unwrap()).unwrap();
        let config = Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await.unwrap();
        measure("tls", Client::try_from(config).unwrap(), 1000).await;

        let fresh = SimCluster::start();
        let res = fresh.store().resource("", "v1", "configmaps").unwrap();
        let before = rss_bytes();
        for i in 0..10_000 {
            let obj = json!({"metadata": {"name": format!("m-{i}"), "labels": {"app": "bench", "index": i.to_string()}},
                "data": {"config.yaml": "key: value\nother: 42\n"}});
            fresh.store().create(&res, Some("default"), obj, &WriteOptions::default()).unwrap();
        }
        let after = rss_bytes();
        println!(
            "memory                 {:.1} MiB resident for 10,000 config maps (incl. watch history), {:.2} KiB each",
            (after.saturating_sub(before)) as f64 / 1048576.0,
            (after.saturating_sub(before)) as f64 / 1024.0 / 10_000.0
        );
        drop(endpoint);
    });
}
