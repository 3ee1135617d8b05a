//! The served simulated cluster (`relapse sim up`) under connection abuse: many idle
//! connections and a descriptor limit lower than their number. The server must keep answering
//! `/version` and must not spin on failed accepts.

#![expect(
    clippy::unwrap_used,
    reason = "a failed setup step in a test aborts it with its message"
)]

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The descriptor limit the server runs with (the probe that found the spin used 256).
const NOFILE: libc::rlim_t = 256;
/// More idle connections than the server has descriptors.
const HELD: usize = 300;

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on the child this test started; no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(kubeconfig: &Path) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relapse"));
    command
        .args(["sim", "up", "--pace", "wall", "--kubeconfig"])
        .arg(kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe and the closure allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    // The second line is printed once the kubeconfig is written.
    let mut seen = 0;
    for line in lines.by_ref() {
        line.unwrap();
        seen += 1;
        if seen == 2 {
            break;
        }
    }
    assert_eq!(seen, 2, "relapse sim up did not start");
    Server { child }
}

/// `server`, CA PEM and token from the kubeconfig the server wrote.
fn credentials(kubeconfig: &Path) -> (String, Vec<u8>, String) {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in the kubeconfig"))
            .trim_matches(['"', '\''])
            .to_string()
    };
    let ca = relapse::sim::store::unbase64(&field("certificate-authority-data")).unwrap();
    (field("server"), ca, field("token"))
}

/// CPU seconds (user and system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_descriptor_limit_do_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("sim.kubeconfig");
    let server = start(&kubeconfig);
    let (url, ca, token) = credentials(&kubeconfig);
    let addr = url.trim_start_matches("https://").to_string();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let version = || {
        let request = client
            .get(format!("{url}/version"))
            .bearer_auth(&token)
            .send();
        async move { request.await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(version().await.unwrap(), 200);

    let mut held = Vec::new();
    for _ in 0..HELD {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(stream) => held.push(stream),
            Err(e) => panic!("connect failed after {} connections: {e}", held.len()),
        }
    }
    // Let the server work through the backlog.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.child.id();
    let before = cpu_seconds(pid);
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(
            version()
                .await
                .expect("/version did not answer while connections were held"),
            200
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(pid) - before;
    let elapsed = started.elapsed().as_secs_f64();
    // A spinning accept loop burns a whole core.
    assert!(
        used < 0.5 * elapsed,
        "the server used {used:.2}s of CPU in {elapsed:.2}s with idle connections held"
    );
    drop(held);
    assert_eq!(version().await.unwrap(), 200);
}
