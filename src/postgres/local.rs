//! Ephemeral servers started from the machine's PostgreSQL binaries.
//!
//! Each server lives in a private temporary directory (data, socket, certificate, log; in
//! `/dev/shm` when it has room) and listens on that directory's unix socket and on a free
//! `127.0.0.1` port. Nothing may outlive the test process, however it ends:
//!
//! - a normal stop ([`Provider::shutdown`], or dropping a non-shared provider) stops the server
//!   and removes the directory;
//! - a watchdog shell process waits for end-of-file on a pipe whose write end only this process
//!   holds; when the process exits for any reason (panic, SIGINT, SIGKILL) the kernel closes
//!   the pipe and the watchdog stops the postmaster and removes the directory;
//! - the postmaster also gets SIGQUIT (immediate shutdown) from the kernel when this process
//!   dies (`PR_SET_PDEATHSIG`), so it never runs on without its watchdog.
//!
//! Both children run in their own process groups, so a terminal's Ctrl-C reaches only the
//! test process and the cleanup above runs in order.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use crate::scenario::SslMode;

use super::server::{HbaWriter, ServerParts};
use super::sql::{ConnectSpec, Route};
use super::watchdog::{Watchdog, wait_with_deadline};
use super::{Error, Provider, Server, Unavailable};

const NAME: &str = "local";
/// The superuser `initdb` creates.
const ADMIN: &str = "postgres";
/// Environment variable naming a directory holding `initdb` and `postgres`.
pub const BIN_ENV: &str = "RELAPSE_POSTGRES_BIN";
const REMEDY: &str = "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql), \
     set RELAPSE_POSTGRES_BIN to the directory holding initdb and postgres, or use \
     RELAPSE_POSTGRES=url with RELAPSE_POSTGRES_URL";

/// Options of a local provider.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Directory holding `initdb` and `postgres`; default: searched (see [`find_binaries`]).
    pub bin_dir: Option<PathBuf>,
    /// Deadline for `initdb` and for the server to accept connections.
    pub start_timeout: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            bin_dir: std::env::var_os(BIN_ENV).map(PathBuf::from),
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// The PostgreSQL programs a local server is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `initdb`.
    pub initdb: PathBuf,
    /// `postgres`.
    pub postgres: PathBuf,
}

/// Finds `initdb` and `postgres` of one installation: in `explicit` if given, else on `PATH`
/// (following symlinks to the installation's directory), else under
/// `/usr/lib/postgresql/<version>/bin` (Debian) or `/usr/pgsql-<version>/bin` (RHEL), newest
/// version first.
///
/// # Errors
/// [`Unavailable`] saying where it looked and how to install the binaries.
pub fn find_binaries(explicit: Option<&Path>) -> Result<Binaries, Unavailable> {
    let unavailable = |reason: String| Unavailable {
        provider: NAME,
        reason,
        remedy: REMEDY.to_owned(),
    };
    if let Some(dir) = explicit {
        return binaries_in(dir)
            .ok_or_else(|| unavailable(format!("no initdb and postgres in {}", dir.display())));
    }
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // `/usr/local/bin/initdb` may be a link into an installation; its `postgres`
                // must come from the same one.
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    candidates.push(parent.to_path_buf());
                }
                candidates.push(dir);
            }
        }
    }
    for pattern in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        candidates.extend(versioned_dirs(Path::new(pattern.0), pattern.1));
    }
    candidates
        .iter()
        .find_map(|dir| binaries_in(dir))
        .ok_or_else(|| {
            unavailable(
                "no initdb and postgres on PATH, in /usr/lib/postgresql/*/bin or /usr/pgsql-*/bin"
                    .to_owned(),
            )
        })
}

fn binaries_in(dir: &Path) -> Option<Binaries> {
    let binaries = Binaries {
        initdb: dir.join("initdb"),
        postgres: dir.join("postgres"),
    };
    (binaries.initdb.is_file() && binaries.postgres.is_file()).then_some(binaries)
}

/// `<root>/<prefix><version>/bin` directories, newest version first.
fn versioned_dirs(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let key = version
                .split('.')
                .map(|part| part.parse::<u64>().ok())
                .collect::<Option<Vec<_>>>()?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// How many servers per TLS setting a local provider runs at most: scenarios that declare the
/// same role or database names run side by side on different servers up to this many, then
/// wait for each other.
const MAX_SERVERS: usize = 4;

/// Servers started from the machine's PostgreSQL binaries: one with TLS and, if a scenario
/// asks for it, one without, each started on first use; more of each when scenarios declaring
/// the same names run at once (up to [`MAX_SERVERS`]).
pub struct LocalProvider {
    options: LocalOptions,
    with_tls: OnceCell<Arc<Server>>,
    without_tls: OnceCell<Arc<Server>>,
    /// The other servers, with TLS and without.
    others: [tokio::sync::Mutex<Vec<Arc<Server>>>; 2],
    /// A copy of the first server's freshly initialised data directory: other servers start
    /// from a copy of it, which takes a fraction of `initdb`'s time.
    template: Mutex<Option<PathBuf>>,
    instances: Mutex<Vec<Instance>>,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    /// A provider of its own (its servers stop when it is dropped).
    #[must_use]
    pub fn new(options: LocalOptions) -> Self {
        Self {
            options,
            with_tls: OnceCell::new(),
            without_tls: OnceCell::new(),
            others: [
                tokio::sync::Mutex::new(Vec::new()),
                tokio::sync::Mutex::new(Vec::new()),
            ],
            template: Mutex::new(None),
            instances: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        }
    }

    /// The process-wide provider with default options. Its servers stop when the process
    /// exits (see the module documentation) or on [`Provider::shutdown`].
    #[must_use]
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<LocalProvider> = OnceLock::new();
        SHARED.get_or_init(|| Self::new(LocalOptions::default()))
    }

    /// Whether this machine can run local servers; the reason and remedy when not.
    ///
    /// # Errors
    /// [`Unavailable`] when binaries or an unprivileged user are missing.
    pub fn check(&self) -> Result<Binaries, Unavailable> {
        let binaries = find_binaries(self.options.bin_dir.as_deref())?;
        run_as()?;
        Ok(binaries)
    }

    async fn start(&self, tls: bool, first: bool) -> Result<Arc<Server>, Error> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(Error::ShutDown(NAME));
        }
        let binaries = self.check()?;
        let template = self
            .template
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let plan = StartPlan {
            tls,
            timeout: self.options.start_timeout,
            // The first server keeps spare databases for tenants; the others serve only the
            // scenarios that overflow onto them.
            spares: if first { 4 } else { 0 },
            keep_template: template.is_none(),
            template,
        };
        let (instance, parts, template) =
            tokio::task::spawn_blocking(move || start_blocking(&binaries, &plan))
                .await
                .map_err(Error::Task)??;
        if let Some(template) = template {
            self.template
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(template);
        }
        let mut instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        instances.push(instance);
        if self.shut_down.load(Ordering::SeqCst) {
            // Shut down while starting: stop what was just started.
            let leftovers: Vec<Instance> = instances.drain(..).collect();
            drop(instances);
            for instance in leftovers {
                instance.stop()?;
            }
            return Err(Error::ShutDown(NAME));
        }
        let server = Arc::new(Server::new(parts));
        server.refill_spares();
        Ok(server)
    }

    fn stop_all(&self) -> Result<(), Error> {
        self.shut_down.store(true, Ordering::SeqCst);
        let instances: Vec<Instance> = self
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let mut first_error = None;
        for instance in instances {
            if let Err(error) = instance.stop() {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check_available(&self) -> Result<(), Unavailable> {
        self.check().map(|_| ())
    }

    fn server(&self, tls: bool) -> BoxFuture<'_, Result<Arc<Server>, Error>> {
        Box::pin(super::provider::lazy_server(
            NAME,
            [&self.with_tls, &self.without_tls],
            &self.shut_down,
            tls,
            move || self.start(tls, true),
        ))
    }

    fn other_server(
        &self,
        tls: bool,
        n: usize,
    ) -> BoxFuture<'_, Result<Option<Arc<Server>>, Error>> {
        Box::pin(async move {
            if n == 0 || n >= MAX_SERVERS {
                return Ok(None);
            }
            let mut others = self.others[usize::from(!tls)].lock().await;
            // Started one at a time, in order: the n-th exists once the ones before it do.
            while others.len() < n {
                let server = self.start(tls, false).await?;
                others.push(server);
            }
            Ok(others.get(n - 1).cloned())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        // Stopping waits (bounded) for processes; it is rare enough to block for.
        Box::pin(async move { self.stop_all() })
    }
}

impl Drop for LocalProvider {
    fn drop(&mut self) {
        // Best effort: the watchdogs clean up whatever this misses.
        let _ = self.stop_all();
    }
}

/// A started server's processes and directory.
struct Instance {
    dir: PathBuf,
    postmaster: Child,
    watchdog: Watchdog,
}

impl Instance {
    /// Fast shutdown, bounded; then removes the directory and lets the watchdog go.
    fn stop(mut self) -> Result<(), Error> {
        let pid = self.postmaster.id();
        // SIGINT is the postmaster's "fast shutdown": backends are terminated, no waiting
        // for clients.
        signal(pid, libc::SIGINT);
        if wait_with_deadline(&mut self.postmaster, Duration::from_secs(10)).is_none() {
            let _ = self.postmaster.kill();
            let _ = self.postmaster.wait();
        }
        // The watchdog first: it also stops whatever of the server still works in the
        // directory and removes the shared memory a killed server left.
        self.watchdog.release(Duration::from_secs(15));
        remove_dir(&self.dir)
    }
}

fn remove_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            action: "remove",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory effects; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The unprivileged user to run `initdb` and `postgres` as: they refuse to run as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, Unavailable> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    // SAFETY: getpwnam returns null or a pointer to static storage, read at once; the lookup
    // runs under a lock so no other thread of this module overwrites that storage meanwhile.
    static LOOKUP: Mutex<()> = Mutex::new(());
    let _guard = LOOKUP.lock().unwrap_or_else(|e| e.into_inner());
    let entry = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if entry.is_null() {
        return Err(Unavailable {
            provider: NAME,
            reason: "running as root and there is no user `nobody` to run postgres as".to_owned(),
            remedy: "run the tests as an unprivileged user, or create the user `nobody`".to_owned(),
        });
    }
    // SAFETY: non-null, points to a valid passwd entry (see above).
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

fn chown(path: &Path, user: Option<RunAs>) -> Result<(), Error> {
    if let Some(user) = user {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(io_error("chown", path))?;
    }
    Ok(())
}

/// A memory file system for server directories, when it has this much room.
const MEMORY_DIR: &str = "/dev/shm";
const MEMORY_DIR_MIN_FREE: u64 = 1 << 30;

/// The base for the server directory: [`MEMORY_DIR`] when usable, else the temp dir, unless
/// that is too long for a unix socket path or (when running as root) not reachable by the
/// unprivileged user.
///
/// A throwaway server gains nothing from a disk: on one, `initdb` took 1.5 s and a
/// `CREATE DATABASE` (copying `template1`) 200-500 ms here, against 0.6 s and 20-30 ms in
/// memory; the server itself is the same.
fn base_dir(user: Option<RunAs>) -> PathBuf {
    let memory = Path::new(MEMORY_DIR);
    if has_room(memory, MEMORY_DIR_MIN_FREE)
        && std::fs::metadata(memory).is_ok_and(|m| {
            // Anyone may create entries there (sticky and world-writable, as /dev/shm is).
            m.is_dir() && m.permissions().mode() & 0o1003 == 0o1003
        })
    {
        return memory.to_path_buf();
    }
    let temp = std::env::temp_dir();
    // sun_path holds 107 bytes; the socket is `<base>/relapse-pg-XXXXXX/.s.PGSQL.<port>`.
    let short_enough = temp.as_os_str().len() < 60;
    let reachable = user.is_none()
        || temp
            .ancestors()
            .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if short_enough && reachable {
        temp
    } else {
        PathBuf::from("/tmp")
    }
}

/// Whether the file system holding `dir` has at least `bytes` free for unprivileged users.
fn has_room(dir: &Path, bytes: u64) -> bool {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: all-zero bytes are a valid `statvfs` (plain integers).
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stats` a writable `statvfs`, both live
    // for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &raw mut stats) } != 0 {
        return false;
    }
    // Both are 64 bits wide on 64-bit Linux, narrower on some other targets.
    #[expect(
        clippy::useless_conversion,
        reason = "statvfs fields are u64 here but narrower on other targets"
    )]
    let free = u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize));
    free >= bytes
}

/// Spawns commands from one thread that lives as long as the process: `PR_SET_PDEATHSIG`
/// fires when the *thread* that forked the child exits, so it must not be a test thread.
fn spawn_from_keeper(command: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<Option<mpsc::Sender<Request>>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("relapse-postgres-keeper".to_owned())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    let _ = reply.send(command.spawn());
                }
            });
        Mutex::new(spawned.ok().map(|_| sender))
    });
    let (reply, answer) = mpsc::channel();
    let sent = keeper
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|sender| sender.send((command, reply)).is_ok());
    if !sent {
        return Err(std::io::Error::other("the process-spawning thread is gone"));
    }
    answer
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the process-spawning thread is gone")))
}

/// Stops the server's processes, removes the shared memory they mapped and the server
/// directory `$1` (canonical).
///
/// The processes are found by their working directory, never by `postmaster.pid`: initdb's
/// standalone backend writes its PID negated there (which `kill` reads as a process group),
/// and a stale file can name a PID that now belongs to someone else. initdb runs in `$1` and
/// every postgres process in `$1/data`, a directory private to this server, so only its own
/// processes are signalled: SIGQUIT (immediate shutdown) first, SIGKILL for what is left after
/// 5 s. A backend killed before it detaches leaves its dynamic shared memory
/// (`/dev/shm/PostgreSQL.<n>`) behind; the segments the processes had mapped are removed
/// afterwards, each only if the file is still the one they mapped (same inode).
const CLEANUP: &str = r#"dir="$1"
ours() {
  find /proc/[0-9]*/cwd -maxdepth 0 \( -lname "$dir" -o -lname "$dir/*" \
    -o -lname "$dir (deleted)" \) 2>/dev/null | sed -e 's#^/proc/##' -e 's#/cwd$##'
}
segments() {
  for pid in "$@"; do
    [ -r "/proc/$pid/maps" ] || continue
    while read -r _ _ _ _ inode path rest; do
      case "$path" in
        /dev/shm/PostgreSQL.*) [ -z "$rest" ] && echo "$inode $path" ;;
      esac
    done < "/proc/$pid/maps"
  done
}
pids=$(ours)
seen=$(segments $pids)
if [ -n "$pids" ]; then
  kill -QUIT $pids 2>/dev/null
  i=0
  while [ "$i" -lt 100 ]; do
    left=$(ours)
    [ -z "$left" ] && break
    seen="$seen
$(segments $left)"
    sleep 0.05
    i=$((i+1))
  done
  left=$(ours)
  if [ -n "$left" ]; then
    kill -KILL $left 2>/dev/null
    i=0
    while [ -n "$(ours)" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i+1)); done
  fi
fi
printf '%s\n' "$seen" | sort -u | while read -r inode path; do
  [ -n "$path" ] || continue
  [ "$(stat -c %i "$path" 2>/dev/null)" = "$inode" ] && rm -f "$path"
done
i=0
while [ -e "$dir" ] && [ "$i" -lt 20 ]; do
  rm -rf "$dir" 2>/dev/null
  [ -e "$dir" ] && sleep 0.05
  i=$((i+1))
done
"#;

/// How to start one server.
struct StartPlan {
    tls: bool,
    timeout: Duration,
    /// Spare databases to keep ready.
    spares: usize,
    /// A freshly initialised data directory to copy instead of running `initdb`.
    template: Option<PathBuf>,
    /// Whether to keep a copy of the fresh data directory as the template for later servers.
    keep_template: bool,
}

/// Starts a server in a new directory; returns the template it kept, if asked to.
fn start_blocking(
    binaries: &Binaries,
    plan: &StartPlan,
) -> Result<(Instance, ServerParts, Option<PathBuf>), Error> {
    let user = run_as()?;
    let base = base_dir(user);
    let dir = tempfile::Builder::new()
        .prefix("relapse-pg-")
        .tempdir_in(&base)
        .map_err(io_error("create a directory in", &base))?
        .keep();
    // The watchdog recognises the server's processes by their working directory, which the
    // kernel reports canonical.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    // From here on the watchdog owns the directory's removal if this process dies.
    let watchdog = match Watchdog::spawn(CLEANUP, [&dir]) {
        Ok(child) => child,
        Err(source) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Error::Spawn {
                program: "/bin/sh".into(),
                source,
            });
        }
    };
    let prepared = prepare_and_spawn(binaries, &dir, user, plan);
    let tls = plan.tls;
    match prepared {
        Ok((postmaster, port, template)) => {
            let pid = postmaster.id();
            let instance = Instance {
                dir: dir.clone(),
                postmaster,
                watchdog,
            };
            let version = version_of(&binaries.postgres);
            let parts = ServerParts {
                provider: NAME,
                host: "127.0.0.1".to_owned(),
                port,
                admin: ConnectSpec {
                    route: Route::Unix {
                        dir: dir.clone(),
                        port,
                    },
                    user: ADMIN.to_owned(),
                    password: None,
                    database: "postgres".to_owned(),
                    sslmode: SslMode::Disable,
                },
                tls,
                hba: Some((HbaWriter::File(dir.join("data/pg_hba.conf")), hba_header())),
                data_dir: Some(dir),
                pid: Some(pid),
                version,
                keep_alive: None,
                spares: plan.spares,
            };
            Ok((instance, parts, template))
        }
        Err(error) => {
            // The watchdog first: it finds what still runs (an initdb cut off at the deadline
            // leaves its backend) by the directory, which must still exist for that.
            watchdog.release(Duration::from_secs(15));
            let _ = std::fs::remove_dir_all(&dir);
            Err(error)
        }
    }
}

/// The lines before the scenarios' own: the administrator logs in over the unix socket.
fn hba_header() -> Vec<String> {
    vec![
        "# generated by relapse: the administrator, then one block per scenario".to_owned(),
        format!("local all \"{ADMIN}\" trust"),
    ]
}

fn version_of(postgres: &Path) -> String {
    Command::new(postgres)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |v| v.trim().to_owned())
}

fn prepare_and_spawn(
    binaries: &Binaries,
    dir: &Path,
    user: Option<RunAs>,
    plan: &StartPlan,
) -> Result<(Child, u16, Option<PathBuf>), Error> {
    chown(dir, user)?;
    let deadline = Instant::now() + plan.timeout;
    let data = dir.join("data");
    match &plan.template {
        Some(template) => copy_tree(template, &data, user)?,
        None => {
            let initdb_log = dir.join("initdb.log");
            let mut initdb = Command::new(&binaries.initdb);
            initdb
                .arg("-D")
                .arg(&data)
                .args(["-U", ADMIN, "-A", "trust", "-E", "UTF8", "--locale=C"])
                .args(["--no-sync", "--no-instructions"]);
            run_to_completion(initdb, dir, user, &initdb_log, deadline)?;
        }
    }
    // Copied before the server first touches the directory: a later server starting from it
    // starts exactly as this one does. It lives (and goes) with this server's directory.
    let template = if plan.keep_template && plan.template.is_none() {
        let template = dir.join("template");
        copy_tree(&data, &template, user)?;
        Some(template)
    } else {
        None
    };
    let tls = plan.tls;
    if tls {
        write_certificate(dir, user)?;
    }
    let mut last_error = None;
    // A port found free can be taken before the server binds it; try a few.
    for _ in 0..3 {
        let port = free_port().map_err(io_error("find a free port on", Path::new("127.0.0.1")))?;
        match spawn_postmaster(binaries, dir, user, tls, port, deadline) {
            Ok(child) => return Ok((child, port, template)),
            Err(error @ Error::ExitedDuringStartup { .. }) if error_is_bind(&error) => {
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or(Error::ShutDown(NAME)))
}

/// Copies a data directory (directories and regular files, with their modes), owned by
/// `user` when given. `initdb` makes nothing else; anything else is refused.
fn copy_tree(from: &Path, to: &Path, user: Option<RunAs>) -> Result<(), Error> {
    let mode = std::fs::metadata(from)
        .map_err(io_error("read", from))?
        .permissions();
    std::fs::create_dir(to).map_err(io_error("create", to))?;
    std::fs::set_permissions(to, mode).map_err(io_error("chmod", to))?;
    chown(to, user)?;
    for entry in std::fs::read_dir(from).map_err(io_error("read", from))? {
        let entry = entry.map_err(io_error("read", from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io_error("read", &source))?;
        if kind.is_dir() {
            copy_tree(&source, &target, user)?;
        } else if kind.is_file() {
            // Keeps the file's mode.
            std::fs::copy(&source, &target).map_err(io_error("copy", &source))?;
            chown(&target, user)?;
        } else {
            return Err(Error::Io {
                action: "copy",
                path: source,
                source: std::io::Error::other("neither a directory nor a regular file"),
            });
        }
    }
    Ok(())
}

fn error_is_bind(error: &Error) -> bool {
    matches!(error, Error::ExitedDuringStartup { log_tail, .. } if log_tail.contains("could not bind"))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn prepare_command(
    command: &mut Command,
    dir: &Path,
    user: Option<RunAs>,
    log: &Path,
) -> Result<(), Error> {
    let out = File::create(log).map_err(io_error("create", log))?;
    let err = out.try_clone().map_err(io_error("open", log))?;
    command
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    if let Some(user) = user {
        // std drops the supplementary groups when switching from root to another uid.
        command.uid(user.uid).gid(user.gid);
    }
    Ok(())
}

fn run_to_completion(
    mut command: Command,
    dir: &Path,
    user: Option<RunAs>,
    log: &Path,
    deadline: Instant,
) -> Result<(), Error> {
    prepare_command(&mut command, dir, user, log)?;
    let program = PathBuf::from(command.get_program());
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let status = wait_with_deadline(
        &mut child,
        deadline.saturating_duration_since(Instant::now()),
    );
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(Error::CommandFailed {
            program,
            status,
            output: tail(log),
        }),
        None => {
            let _ = child.kill();
            let status = child.wait().map_err(|source| Error::Spawn {
                program: program.clone(),
                source,
            })?;
            Err(Error::CommandFailed {
                program,
                status,
                output: format!("(killed at the startup deadline)\n{}", tail(log)),
            })
        }
    }
}

fn write_certificate(dir: &Path, user: Option<RunAs>) -> Result<(), Error> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(Error::Certificate)?;
    for (name, contents) in [
        ("server.crt", certified.cert.pem()),
        ("server.key", certified.signing_key.serialize_pem()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(io_error("write", &path))?;
        // The server refuses a key readable by others.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error("chmod", &path))?;
        chown(&path, user)?;
    }
    Ok(())
}

fn spawn_postmaster(
    binaries: &Binaries,
    dir: &Path,
    user: Option<RunAs>,
    tls: bool,
    port: u16,
    deadline: Instant,
) -> Result<Child, Error> {
    let log = dir.join("server.log");
    let mut command = Command::new(&binaries.postgres);
    command.arg("-D").arg(dir.join("data"));
    let mut settings = vec![
        ("listen_addresses", "127.0.0.1".to_owned()),
        ("port", port.to_string()),
        ("unix_socket_directories", dir.display().to_string()),
        ("ssl", if tls { "on" } else { "off" }.to_owned()),
        // A throwaway server: durability buys nothing and costs time.
        ("fsync", "off".to_owned()),
        ("synchronous_commit", "off".to_owned()),
        ("full_page_writes", "off".to_owned()),
        ("max_connections", "200".to_owned()),
        ("password_encryption", "scram-sha-256".to_owned()),
        ("log_line_prefix", "%m [%p] %q%u@%d ".to_owned()),
    ];
    if tls {
        settings.push((
            "ssl_cert_file",
            dir.join("server.crt").display().to_string(),
        ));
        settings.push(("ssl_key_file", dir.join("server.key").display().to_string()));
    }
    for (name, value) in settings {
        command.arg("-c").arg(format!("{name}={value}"));
    }
    prepare_command(&mut command, dir, user, &log)?;
    // SAFETY: prctl is async-signal-safe and the closure allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = spawn_from_keeper(command).map_err(|source| Error::Spawn {
        program: binaries.postgres.clone(),
        source,
    })?;
    let pid_file = dir.join("data/postmaster.pid");
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(Error::ExitedDuringStartup {
                    dir: dir.to_path_buf(),
                    status,
                    log_tail: tail(&log),
                });
            }
            Ok(None) => {}
            Err(source) => {
                return Err(Error::Spawn {
                    program: binaries.postgres.clone(),
                    source,
                });
            }
        }
        if is_ready(&pid_file) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::StartTimeout {
                dir: dir.to_path_buf(),
                timeout: deadline.saturating_duration_since(Instant::now()),
                log_tail: tail(&log),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `postmaster.pid` says the server accepts connections: its eighth line is the
/// status `pg_ctl` waits for (`PM_STATUS_READY` in src/include/utils/pidfile.h).
fn is_ready(pid_file: &Path) -> bool {
    std::fs::read_to_string(pid_file).is_ok_and(|text| {
        text.lines()
            .nth(7)
            .is_some_and(|line| line.trim() == "ready")
    })
}

/// The last 30 lines of a log file.
fn tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let length = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that must survive the cleanup: `sleep` in its own process group, working
    /// outside the server directory.
    fn foreign_process() -> Child {
        Command::new("sleep")
            .arg("30")
            .current_dir("/")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn alive(child: &mut Child) -> bool {
        matches!(child.try_wait(), Ok(None))
    }

    fn stop(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The watchdog's cleanup over a server directory `dir`.
    fn run_cleanup(dir: &Path) {
        Watchdog::spawn(CLEANUP, [dir])
            .unwrap()
            .release(Duration::from_secs(20));
    }

    #[test]
    fn cleanup_never_signals_a_foreign_or_negative_pid() {
        for negate in [true, false] {
            let server = tempfile::tempdir().unwrap();
            let data = server.path().join("data");
            std::fs::create_dir(&data).unwrap();
            let mut foreign = foreign_process();
            // A standalone backend (initdb's) writes its PID negated; a stale file may name a
            // reused PID.
            let pid = i64::from(foreign.id());
            let written = if negate { -pid } else { pid };
            std::fs::write(data.join("postmaster.pid"), format!("{written}\n")).unwrap();
            run_cleanup(server.path());
            assert!(
                alive(&mut foreign),
                "the cleanup signalled the foreign process {written} names"
            );
            assert!(!server.path().exists(), "the directory was not removed");
            stop(foreign);
        }
    }

    #[test]
    fn cleanup_stops_the_servers_processes_and_removes_their_shared_memory() {
        let server = tempfile::tempdir().unwrap();
        let data = server.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // A stand-in for a backend that dies without unlinking its dynamic shared memory: a
        // process working in the data directory that maps /dev/shm/PostgreSQL.<n> (here by
        // running a copy of `sleep` from there). Where /dev/shm refuses to execute, a plain
        // `sleep` stands in for the process alone.
        let segment = PathBuf::from(format!(
            "/dev/shm/PostgreSQL.{}",
            4_000_000_000u32 - std::process::id()
        ));
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap();
        std::fs::copy(sleep, &segment).unwrap();
        let mut backend = Command::new(&segment)
            .arg("30")
            .current_dir(&data)
            .process_group(0)
            .spawn()
            .or_else(|_| {
                Command::new(sleep)
                    .arg("30")
                    .current_dir(&data)
                    .process_group(0)
                    .spawn()
            })
            .unwrap();
        // initdb itself works in the server directory.
        let mut initdb = Command::new(sleep)
            .arg("30")
            .current_dir(server.path())
            .process_group(0)
            .spawn()
            .unwrap();
        // An unrelated segment of another server stays.
        let other = PathBuf::from(format!(
            "/dev/shm/PostgreSQL.{}",
            3_000_000_000u32 - std::process::id()
        ));
        std::fs::write(&other, b"not ours").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        run_cleanup(server.path());
        let stopped =
            |child: &mut Child| wait_with_deadline(child, Duration::from_secs(5)).is_some();
        assert!(stopped(&mut backend), "the backend still runs");
        assert!(stopped(&mut initdb), "initdb still runs");
        assert!(
            !segment.exists(),
            "the server's shared memory was left behind"
        );
        assert!(other.exists(), "another server's shared memory was removed");
        assert!(!server.path().exists());
        let _ = std::fs::remove_file(&other);
    }

    #[test]
    fn versioned_dirs_are_newest_first() {
        let root = tempfile::tempdir().unwrap();
        for name in ["9.6", "15", "16", "not-a-version", "13.2"] {
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        let dirs = versioned_dirs(root.path(), "");
        let names: Vec<String> = dirs
            .iter()
            .map(|d| {
                d.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["16", "15", "13.2", "9.6"]);
    }

    #[test]
    fn missing_binaries_are_unavailable_with_a_remedy() {
        let empty = tempfile::tempdir().unwrap();
        let error = find_binaries(Some(empty.path())).unwrap_err();
        assert_eq!(error.provider, "local");
        assert!(
            error.reason.contains("no initdb and postgres in"),
            "{error}"
        );
        assert!(
            error.to_string().contains("apt-get install postgresql"),
            "{error}"
        );
    }

    #[test]
    fn readiness_is_read_from_the_eighth_pid_file_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("postmaster.pid");
        std::fs::write(&file, "1\n/d\n1\n5432\n/tmp\n127.0.0.1\n  1 2\nstarting\n").unwrap();
        assert!(!is_ready(&file));
        std::fs::write(&file, "1\n/d\n1\n5432\n/tmp\n127.0.0.1\n  1 2\nready   \n").unwrap();
        assert!(is_ready(&file));
        assert!(!is_ready(&dir.path().join("absent")));
    }

    #[test]
    fn room_is_measured_on_the_directory_file_system() {
        let temp = std::env::temp_dir();
        assert!(has_room(&temp, 1));
        assert!(!has_room(&temp, u64::MAX));
        assert!(!has_room(Path::new("/no/such/directory/anywhere"), 0));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&file, text).unwrap();
        let tail = tail(&file);
        assert!(tail.starts_with("line 70\n"), "{tail}");
        assert!(tail.ends_with("line 99"));
    }
}
