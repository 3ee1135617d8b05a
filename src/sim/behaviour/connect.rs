//! Connections a stand-in program makes to what another program serves.
//!
//! The client's target and credentials come from its own configuration (as it read it at
//! start); the server's expected credentials come from the serving container's configuration
//! (as *it* read it at start, see [`super::Program::listeners`]). The connection goes the way a
//! real one does: the name resolves to a Service, kube-proxy forwards to one of its ready
//! endpoints, and the program behind that endpoint answers the handshake. The answer is the
//! server's real reply, which a scenario's `otherwise` lines receive as `{error}`.

use serde_json::Value;

use super::config;
use super::program::ContainerContext;
use super::view::ClusterViewExt;
use crate::matcher::compact;
use crate::scenario::{ClientRuntime, ConnectNeed, Protocol};

/// What a running program serves on one port, with the credentials it read at start.
/// `Debug` leaves the password out: engines and clusters are debug-printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Served {
    /// The protocol.
    pub protocol: Protocol,
    /// The password the server requires; `None` when it requires none.
    pub password: Option<String>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("protocol", &self.protocol)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One port a running program serves, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub pod: String,
    /// The container port.
    pub port: u16,
    /// What is served there.
    pub served: Served,
}

/// The value a configuration source holds, as text; `None` when absent or empty.
pub(super) fn read_text(
    ctx: &ContainerContext,
    source: &crate::scenario::ConfigSource,
) -> Option<String> {
    let text = match config::read(ctx, source)? {
        Value::String(s) => s,
        Value::Null => return None,
        other => compact(&other),
    };
    (!text.is_empty()).then_some(text)
}

/// Where a client connects and what it authenticates with.
struct Dial {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
}

/// Splits `scheme://[user[:password]@]host[:port][/path]` (or `host[:port]`) into its parts.
fn parse_target(text: &str, default_port: u16) -> Dial {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(percent_decode(user)), Some(percent_decode(pw))),
            None => (Some(percent_decode(u)), None),
        },
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
            (h, p.parse().unwrap_or(default_port))
        }
        _ => (hostport, default_port),
    };
    Dial {
        host: host.to_owned(),
        port,
        user: user.filter(|u| !u.is_empty()),
        password: password.filter(|p| !p.is_empty()),
    }
}

/// `%XX` escapes of a URL's userinfo, as URL parsers undo them.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                // Two hex digits make one byte.
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The client's error when nothing accepts the connection at `ip:port`: Go's `OpError`
/// (net/net.go, ECONNREFUSED) or Node's `uvExceptionWithHostPort` (lib/internal/errors.js:
/// `<syscall> <code> <address>:<port>`).
fn refused(runtime: ClientRuntime, ip: &str, port: u16) -> String {
    match runtime {
        ClientRuntime::Go => format!("dial tcp {ip}:{port}: connect: connection refused"),
        ClientRuntime::Node => format!("connect ECONNREFUSED {ip}:{port}"),
    }
}

/// The client's error when the name does not resolve: Go's resolver through `net.Dial`
/// (net/dnsclient_unix.go "no such host", with the cluster DNS service address kubeadm uses)
/// or Node's `dnsException` (lib/internal/errors.js: `getaddrinfo ENOTFOUND <host>`).
fn no_such_host(runtime: ClientRuntime, host: &str) -> String {
    match runtime {
        ClientRuntime::Go => format!("dial tcp: lookup {host} on 10.43.0.10:53: no such host"),
        ClientRuntime::Node => format!("getaddrinfo ENOTFOUND {host}"),
    }
}

/// The Service a host name or cluster IP resolves to, from the client's namespace.
fn resolve_service(host: &str, client_ns: &str, view: &dyn ClusterViewExt) -> Option<Value> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return view
            .list("v1", "Service", None)
            .into_iter()
            .find(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str) == Some(host))
            .map(|s| Value::clone(&s));
    }
    let parts: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    let (name, ns) = match parts.as_slice() {
        [name] => (*name, client_ns),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => (*name, *ns),
        _ => return None,
    };
    view.get("v1", "Service", Some(ns), name)
}

/// The first ready endpoint of `service` for its port `port_name`: `(pod name, target
/// port)`, in the EndpointSlices' order.
fn ready_endpoint(
    view: &dyn ClusterViewExt,
    ns: &str,
    service: &str,
    port_name: &str,
) -> Option<(String, u16)> {
    let slices = view.list("discovery.k8s.io/v1", "EndpointSlice", Some(ns));
    slices
        .iter()
        .filter(|s| {
            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(service)
        })
        .find_map(|s| {
            let port = s
                .get("ports")
                .and_then(Value::as_array)?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)?
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())?;
            s.get("endpoints")
                .and_then(Value::as_array)?
                .iter()
                .filter(|ep| {
                    ep.pointer("/conditions/ready")
                        .and_then(Value::as_bool)
                        .unwrap_or(true)
                })
                .find_map(|ep| {
                    let pod = ep.pointer("/targetRef/name").and_then(Value::as_str)?;
                    Some((pod.to_owned(), port))
                })
        })
}

/// Connects as `need` says: `Ok` with the lines a client that only warns logs (see
/// [`ConnectNeed::unneeded_password`]), `Err` with the client's or the server's error text.
///
/// # Errors
/// What the client sees: a resolver or connection error, or the server's reply to the
/// handshake.
pub(super) fn check(
    ctx: &ContainerContext,
    need: &ConnectNeed,
    view: &dyn ClusterViewExt,
) -> Result<Vec<String>, String> {
    match connect(ctx, need, view) {
        Ok(()) => Ok(Vec::new()),
        Err(Refusal::UnneededPassword(reply)) => match &need.unneeded_password {
            Some(lines) => Ok(lines.clone()),
            None => Err(reply),
        },
        Err(Refusal::Other(error)) => Err(error),
    }
}

/// Why a connection failed.
enum Refusal {
    /// The client sent a password the server does not require (some clients carry on).
    UnneededPassword(String),
    /// Anything else: the client's or the server's error text.
    Other(String),
}

impl From<String> for Refusal {
    fn from(error: String) -> Self {
        Self::Other(error)
    }
}

fn connect(
    ctx: &ContainerContext,
    need: &ConnectNeed,
    view: &dyn ClusterViewExt,
) -> Result<(), Refusal> {
    let default_port = need.protocol.default_port();
    let target = match (&need.to, &need.url) {
        (Some(to), _) => Some(to.clone()),
        (None, Some(source)) => read_text(ctx, source),
        (None, None) => None,
    };
    // A client given no address connects to its library's default, the local host.
    let Some(target) = target else {
        return Err(refused(need.runtime, "127.0.0.1", default_port).into());
    };
    let mut dial = parse_target(&target, default_port);
    if let Some(pw) = need.password.as_ref().and_then(|s| read_text(ctx, s)) {
        dial.password = Some(pw);
    }
    let Some(service) = resolve_service(&dial.host, &ctx.namespace, view) else {
        if dial.host.parse::<std::net::IpAddr>().is_ok() {
            return connect_pod_ip(need, &dial, view);
        }
        return Err(no_such_host(need.runtime, &dial.host).into());
    };
    let ns = service
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&ctx.namespace)
        .to_owned();
    let name = service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let cluster_ip = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let port_name = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(dial.port)))
        .map(|p| {
            p.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        });
    let endpoint = port_name
        .as_deref()
        .and_then(|p| ready_endpoint(view, &ns, &name, p));
    let headless = cluster_ip == "None";
    let Some((pod, target_port)) = endpoint else {
        // A headless Service without ready endpoints has no address records at all.
        if headless {
            return Err(no_such_host(need.runtime, &dial.host).into());
        }
        // kube-proxy rejects connections to a Service port without ready endpoints (its
        // REJECT rule, ECONNREFUSED at the client). A port the Service does not have is
        // worded the same way.
        return Err(refused(need.runtime, &cluster_ip, dial.port).into());
    };
    let Some(served) = view.served_on(&ns, &pod, target_port) else {
        // The program behind the endpoint declares nothing about this port: it accepts.
        return Ok(());
    };
    handshake(&dial, &served)
}

/// A connection straight to a pod's IP: the running pod with that address answers (as the
/// program declares, or accepting when it declares nothing for the port); nothing listening
/// there refuses the connection.
fn connect_pod_ip(
    need: &ConnectNeed,
    dial: &Dial,
    view: &dyn ClusterViewExt,
) -> Result<(), Refusal> {
    let pod = view.list("v1", "Pod", None).into_iter().find(|p| {
        p.pointer("/status/podIP").and_then(Value::as_str) == Some(dial.host.as_str())
            && p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
    });
    let Some(pod) = pod else {
        return Err(refused(need.runtime, &dial.host, dial.port).into());
    };
    let at = |ptr: &str| pod.pointer(ptr).and_then(Value::as_str).unwrap_or_default();
    match view.served_on(at("/metadata/namespace"), at("/metadata/name"), dial.port) {
        None => Ok(()),
        Some(served) => handshake(dial, &served),
    }
}

/// The server's answer to the client's handshake, by protocol. A new protocol (`http`,
/// `tcp`, a Postgres-like one) adds a variant to [`Protocol`] and its handshake here.
fn handshake(dial: &Dial, served: &Served) -> Result<(), Refusal> {
    match served.protocol {
        Protocol::Redis => redis_auth(dial, served.password.as_deref()),
    }
}

/// The reply of a Redis 7 server to the client's handshake.
///
/// A client with a password sends `AUTH <password>` (or `AUTH <user> <password>` with a user
/// name); one without sends no AUTH, and its first command is refused when the server requires
/// one. The texts are the server's (without the RESP `-`):
/// - `NOAUTH Authentication required.`: src/server.c, `shared.noautherr` in
///   `createSharedObjects`, sent by `processCommand` when `authRequired(c)`;
/// - `WRONGPASS invalid username-password pair or user is disabled.`: src/acl.c,
///   `addAuthErrReply`;
/// - `ERR AUTH <password> called without any password configured for the default user. Are
///   you sure your configuration is correct?`: src/acl.c, `authCommand`, the two-argument form
///   when the default user is `nopass` (`addReplyError` adds the `ERR ` prefix; `<password>` is
///   literal text, the password is never echoed).
fn redis_auth(dial: &Dial, required: Option<&str>) -> Result<(), Refusal> {
    // src/server.c (7.2.5) createSharedObjects: `shared.noautherr`.
    const NOAUTH: &str = "NOAUTH Authentication required.";
    // src/acl.c (7.2.5) addAuthErrReply.
    const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
    // src/acl.c (7.2.5) authCommand, with the `ERR ` prefix of networking.c addReplyErrorLength.
    const AUTH_NOPASS: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
    match (dial.user.as_deref(), dial.password.as_deref(), required) {
        (_, None, None) => Ok(()),
        (_, None, Some(_)) => Err(NOAUTH.to_owned().into()),
        // AUTH <password>: the default user.
        (None, Some(_), None) => Err(Refusal::UnneededPassword(AUTH_NOPASS.to_owned())),
        // AUTH default <password> against a nopass default user: any password is accepted
        // (src/acl.c `ACLCheckUserCredentials`, USER_FLAG_NOPASS).
        (Some("default"), Some(_), None) => Ok(()),
        (None | Some("default"), Some(sent), Some(want)) if sent == want => Ok(()),
        // Another user name: a server configured with `requirepass` only has `default`.
        _ => Err(WRONGPASS.to_owned().into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::scenario::Arch;
    use crate::sim::behaviour::StaticView;

    fn ctx(env: &[(&str, &str)]) -> ContainerContext {
        ContainerContext {
            namespace: "apps".into(),
            service_account: "default".into(),
            pod_name: "web".into(),
            container: "web".into(),
            command: vec![],
            args: vec![],
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            files: BTreeMap::new(),
            node_arch: Arch::Amd64,
        }
    }

    fn need(v: Value) -> ConnectNeed {
        serde_json::from_value(v).expect("a connect need")
    }

    fn cluster(ready: bool, required: Option<&str>) -> StaticView {
        let mut view = StaticView::new(vec![
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "redis-master", "namespace": "data"},
                   "spec": {"clusterIP": "10.43.4.20", "ports": [{"name": "redis", "port": 6379, "targetPort": 6379}]}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": "redis-master-abcde", "namespace": "data",
                                "labels": {"kubernetes.io/service-name": "redis-master"}},
                   "ports": [{"name": "redis", "port": 6379}],
                   "endpoints": [{"addresses": ["10.42.0.7"], "conditions": {"ready": ready},
                                  "targetRef": {"kind": "Pod", "name": "redis-master-0", "namespace": "data"}}]}),
        ]);
        view.listeners.push(Listener {
            namespace: "data".into(),
            pod: "redis-master-0".into(),
            port: 6379,
            served: Served {
                protocol: Protocol::Redis,
                password: required.map(str::to_owned),
            },
        });
        view
    }

    #[test]
    fn redis_replies_by_credentials() {
        let view = cluster(true, Some("s3cret-server"));
        let url = |u: &str| ctx(&[("REDIS_URL", u)]);
        let by_url = need(json!({"url": {"env": "REDIS_URL"}}));
        assert_eq!(
            check(&url("redis://redis-master.data:6379/0"), &by_url, &view),
            Err("NOAUTH Authentication required.".into())
        );
        assert_eq!(
            check(
                &url("redis://:wrong@redis-master.data:6379/0"),
                &by_url,
                &view
            ),
            Err("WRONGPASS invalid username-password pair or user is disabled.".into())
        );
        assert_eq!(
            check(
                &url("redis://:s3cret-server@redis-master.data.svc.cluster.local/0"),
                &by_url,
                &view
            ),
            Ok(vec![])
        );
        // Percent-escaped userinfo is decoded; a user other than `default` does not exist.
        assert_eq!(
            check(
                &url("redis://default:s3cret%2Dserver@redis-master.data"),
                &by_url,
                &view
            ),
            Ok(vec![])
        );
        assert_eq!(
            check(
                &url("redis://app:s3cret-server@redis-master.data"),
                &by_url,
                &view
            ),
            Err("WRONGPASS invalid username-password pair or user is disabled.".into())
        );
        // A password setting wins over the URL's.
        let both =
            need(json!({"url": {"env": "REDIS_URL"}, "password": {"env": "REDIS_PASSWORD"}}));
        let c = ctx(&[
            ("REDIS_URL", "redis://:wrong@redis-master.data"),
            ("REDIS_PASSWORD", "s3cret-server"),
        ]);
        assert_eq!(check(&c, &both, &view), Ok(vec![]));
        // An empty password setting sends none.
        let c = ctx(&[
            ("REDIS_URL", "redis://redis-master.data"),
            ("REDIS_PASSWORD", ""),
        ]);
        assert_eq!(
            check(&c, &both, &view),
            Err("NOAUTH Authentication required.".into())
        );

        let open = cluster(true, None);
        let to =
            need(json!({"to": "redis-master.data:6379", "password": {"env": "REDIS_PASSWORD"}}));
        assert_eq!(
            check(&ctx(&[("REDIS_PASSWORD", "anything")]), &to, &open),
            Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into())
        );
        assert_eq!(check(&ctx(&[]), &to, &open), Ok(vec![]));
        // A client that only warns about an unneeded password (ioredis) carries on.
        let warns = need(
            json!({"to": "redis-master.data:6379", "password": {"env": "REDIS_PASSWORD"},
            "unneededPassword": ["[WARN] unneeded"]}),
        );
        assert_eq!(
            check(&ctx(&[("REDIS_PASSWORD", "anything")]), &warns, &open),
            Ok(vec!["[WARN] unneeded".to_owned()])
        );
        assert_eq!(
            check(&ctx(&[("REDIS_PASSWORD", "anything")]), &warns, &view),
            Err("WRONGPASS invalid username-password pair or user is disabled.".into())
        );
        assert_eq!(
            check(
                &url("redis://default:anything@redis-master.data"),
                &by_url,
                &open
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn connection_errors_by_runtime() {
        let view = cluster(false, Some("pw"));
        let go = need(json!({"to": "redis-master.data"}));
        let node = need(json!({"to": "redis-master.data", "runtime": "node"}));
        assert_eq!(
            check(&ctx(&[]), &go, &view),
            Err("dial tcp 10.43.4.20:6379: connect: connection refused".into())
        );
        assert_eq!(
            check(&ctx(&[]), &node, &view),
            Err("connect ECONNREFUSED 10.43.4.20:6379".into())
        );
        // Not in the client's namespace without the namespace in the name.
        assert_eq!(
            check(&ctx(&[]), &need(json!({"to": "redis-master"})), &view),
            Err("dial tcp: lookup redis-master on 10.43.0.10:53: no such host".into())
        );
        assert_eq!(
            check(
                &ctx(&[]),
                &need(json!({"to": "redis-master", "runtime": "node"})),
                &view
            ),
            Err("getaddrinfo ENOTFOUND redis-master".into())
        );
        // No URL configured: the library's default address.
        assert_eq!(
            check(
                &ctx(&[]),
                &need(json!({"url": {"env": "REDIS_URL"}, "runtime": "node"})),
                &view
            ),
            Err("connect ECONNREFUSED 127.0.0.1:6379".into())
        );
        // By cluster IP, once the endpoint is ready.
        let ready = cluster(true, Some("pw"));
        assert_eq!(
            check(
                &ctx(&[("P", "pw")]),
                &need(json!({"to": "10.43.4.20:6379", "password": {"env": "P"}})),
                &ready
            ),
            Ok(vec![])
        );
        // Straight to a pod's IP.
        let mut direct = cluster(true, Some("pw"));
        direct
            .objects
            .push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "redis-master-0", "namespace": "data"},
            "status": {"phase": "Running", "podIP": "10.42.0.7"}}));
        assert_eq!(
            check(&ctx(&[]), &need(json!({"to": "10.42.0.7"})), &direct),
            Err("NOAUTH Authentication required.".into())
        );
        assert_eq!(
            check(
                &ctx(&[]),
                &need(json!({"to": "10.42.0.8:6379", "runtime": "node"})),
                &direct
            ),
            Err("connect ECONNREFUSED 10.42.0.8:6379".into())
        );
        // A program that declares nothing about the port accepts any client.
        let mut quiet = cluster(true, Some("pw"));
        quiet.listeners.clear();
        assert_eq!(check(&ctx(&[]), &go, &quiet), Ok(vec![]));
    }

    #[test]
    fn debug_hides_the_password() {
        let s = Served {
            protocol: Protocol::Redis,
            password: Some("hunter22".into()),
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter22") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
