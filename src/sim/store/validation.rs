//! The common validations of the real API server, with its messages.
//!
//! Messages are those of k8s.io/apimachinery/pkg/util/validation/validation.go (names),
//! k8s.io/kubernetes/pkg/apis/core/validation/validation.go (pods, services, config maps) and
//! k8s.io/kubernetes/pkg/apis/apps/validation/validation.go (workloads).

use serde_json::Value;

use super::error::{FieldError, go_quote, go_string_map};
use super::selector::LabelSelector;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const CONFIG_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

/// `RegexError` of apimachinery's validation package.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|c| is_alnum_lower(*c) || *c == b'-')
}

/// Whether `s` matches `qualifiedNameFmt`.
fn qualified_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// Problems of `s` as a qualified name, a label or annotation key (`IsQualifiedName`,
/// k8s.io/apimachinery/pkg/util/validation/validation.go).
#[must_use]
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !qualified_ok(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Problems of `s` as a label value (`IsValidLabelValue`).
#[must_use]
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !s.is_empty() && !qualified_ok(s) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Problems of `s` as an RFC 1123 label (`IsDNS1123Label`).
#[must_use]
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !label_ok(s) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// Problems of `s` as an RFC 1123 subdomain (`IsDNS1123Subdomain`).
#[must_use]
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !s.split('.').all(label_ok) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Problems of `s` as an RFC 1035 label (`IsDNS1035Label`).
#[must_use]
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !(label_ok(s) && s.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Problems of `s` as a path segment name (`ValidatePathSegmentName`, used by RBAC kinds).
fn path_segment(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Which name rule a kind's `metadata.name` follows.
fn name_rule(group: &str, kind: &str) -> fn(&str) -> Vec<String> {
    match (group, kind) {
        ("", "Namespace") => dns1123_label,
        ("", "Service") => dns1035_label,
        ("rbac.authorization.k8s.io", _) => path_segment,
        _ => dns1123_subdomain,
    }
}

/// The most data a ConfigMap or Secret holds (`core.MaxSecretSize`, pkg/apis/core/types.go).
const MAX_DATA_BYTES: usize = 1024 * 1024;
/// The most annotations an object holds, keys and values together
/// (k8s.io/apimachinery/pkg/api/validation/objectmeta.go, `TotalAnnotationSizeLimitB`).
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Bytes of `data` and `binaryData` (keys and decoded values), as ValidateConfigMap and
/// ValidateSecret count them.
fn data_size(kind: &str, obj: &Value) -> usize {
    let mut total = 0;
    for section in ["data", "binaryData"] {
        // Secret data and binaryData are base64 in JSON; ConfigMap data is text.
        let encoded = kind == "Secret" || section == "binaryData";
        for (k, v) in obj[section].as_object().into_iter().flatten() {
            let text = v.as_str().unwrap_or_default();
            let len = if encoded {
                super::unbase64(text).map_or(text.len(), |b| b.len())
            } else {
                text.len()
            };
            total += k.len() + len;
        }
    }
    total
}

/// `ValidateObjectMeta`'s checks of labels and annotations
/// (k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go `ValidateLabels`, and
/// k8s.io/apimachinery/pkg/api/validation/objectmeta.go `ValidateAnnotations`). Go walks the
/// maps in random order; keys are visited sorted here.
fn object_meta(meta: &Value, errs: &mut Vec<FieldError>) {
    if let Some(labels) = meta["labels"].as_object() {
        let mut keys: Vec<&String> = labels.keys().collect();
        keys.sort();
        for k in keys {
            for msg in qualified_name(k) {
                errs.push(FieldError::invalid_str("metadata.labels", k, msg));
            }
            let v = labels[k].as_str().unwrap_or_default();
            for msg in label_value(v) {
                errs.push(FieldError::invalid_str("metadata.labels", v, msg));
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut keys: Vec<&String> = annotations.keys().collect();
        keys.sort();
        let mut total = 0usize;
        for k in keys {
            // The rule is IsQualifiedName of the lower-cased key.
            for msg in qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid_str("metadata.annotations", k, msg));
            }
            total += k.len() + annotations[k].as_str().map_or(0, str::len);
        }
        if total > MAX_ANNOTATION_BYTES {
            errs.push(FieldError::too_long(
                "metadata.annotations",
                MAX_ANNOTATION_BYTES,
            ));
        }
    }
}

/// Validates an object of `group`/`kind` before it is stored.
#[must_use]
pub fn validate(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in name_rule(group, kind)(name) {
            errs.push(FieldError::invalid_str("metadata.name", name, msg));
        }
    }
    object_meta(&obj["metadata"], &mut errs);
    if group.is_empty()
        && matches!(kind, "ConfigMap" | "Secret")
        && data_size(kind, obj) > MAX_DATA_BYTES
    {
        // pkg/apis/core/validation/validation.go (ValidateConfigMap reports the whole object,
        // the path "" printed as `[]`; ValidateSecret reports `data`), with core.MaxSecretSize.
        let field = if kind == "Secret" { "data" } else { "[]" };
        errs.push(FieldError::too_long(field, MAX_DATA_BYTES));
    }
    let spec = &obj["spec"];
    match (group, kind) {
        ("", "Pod") => pod_spec(spec, "spec", &mut errs),
        ("", "ConfigMap") => {
            for section in ["data", "binaryData"] {
                for key in obj[section].as_object().into_iter().flat_map(|m| m.keys()) {
                    let ok = !key.is_empty()
                        && key
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c));
                    if !ok {
                        errs.push(FieldError::invalid_str(
                            format!("{section}[{key}]"),
                            key,
                            regex_error(
                                CONFIG_KEY_MSG,
                                CONFIG_KEY_FMT,
                                &["key.name", "KEY_NAME", "key-name"],
                            ),
                        ));
                    }
                }
            }
        }
        ("", "Service") => service(spec, &mut errs),
        ("apps", "Deployment") => {
            replicas(spec, &mut errs);
            selector_and_template(spec, &mut errs);
            restart_always(spec, &mut errs);
            deployment_strategy(spec, &mut errs);
            if let (Some(pd), Some(mr)) = (
                spec["progressDeadlineSeconds"].as_i64(),
                spec["minReadySeconds"].as_i64(),
            ) && pd <= mr
            {
                errs.push(FieldError::invalid_raw(
                    "spec.progressDeadlineSeconds",
                    pd.to_string(),
                    "must be greater than minReadySeconds",
                ));
            }
        }
        ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            if kind != "DaemonSet" {
                replicas(spec, &mut errs);
            }
            selector_and_template(spec, &mut errs);
            restart_always(spec, &mut errs);
            if kind == "StatefulSet"
                && let Some(p) = spec["podManagementPolicy"].as_str()
                && p != "OrderedReady"
                && p != "Parallel"
            {
                // pkg/apis/apps/validation/validation.go (ValidatePodManagementPolicy):
                // field.Invalid, not NotSupported.
                errs.push(FieldError::invalid_str(
                    "spec.podManagementPolicy",
                    p,
                    "must be 'OrderedReady' or 'Parallel'",
                ));
            }
        }
        ("batch", "Job") => job_spec(spec, "spec", &mut errs),
        ("batch", "CronJob") => {
            if spec["schedule"].as_str().unwrap_or_default().is_empty() {
                errs.push(FieldError::required("spec.schedule", ""));
            }
            job_spec(
                &spec["jobTemplate"]["spec"],
                "spec.jobTemplate.spec",
                &mut errs,
            );
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj, &mut errs),
        _ => {}
    }
    errs
}

fn replicas(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(r) = spec["replicas"].as_i64()
        && r < 0
    {
        errs.push(FieldError::invalid_raw(
            "spec.replicas",
            r.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

fn selector_and_template(spec: &Value, errs: &mut Vec<FieldError>) {
    let labels = &spec["template"]["metadata"]["labels"];
    if spec["selector"].is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else if let Ok(sel) = LabelSelector::from_object(&spec["selector"])
        && !sel.is_empty()
        && !sel.matches(labels)
    {
        errs.push(FieldError::invalid_raw(
            "spec.template.metadata.labels",
            go_string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    pod_spec(&spec["template"]["spec"], "spec.template.spec", errs);
}

fn restart_always(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(p) = spec["template"]["spec"]["restartPolicy"].as_str()
        && p != "Always"
    {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            p,
            &["Always"],
        ));
    }
}

fn deployment_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let strategy = &spec["strategy"];
    match strategy["type"].as_str().unwrap_or_default() {
        "Recreate" => {
            if !strategy["rollingUpdate"].is_null() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {}
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
}

fn job_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let field = format!("{path}.template.spec.restartPolicy");
    match spec["template"]["spec"]["restartPolicy"].as_str() {
        None | Some("") => errs.push(FieldError::required(
            field,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        Some("OnFailure" | "Never") => {}
        Some(other) => errs.push(FieldError::not_supported(
            field,
            other,
            &["OnFailure", "Never"],
        )),
    }
    pod_spec(
        &spec["template"]["spec"],
        &format!("{path}.template.spec"),
        errs,
    );
}

fn pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(p) = spec["restartPolicy"].as_str()
        && !["Always", "OnFailure", "Never"].contains(&p)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            p,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(p) = spec["dnsPolicy"].as_str()
        && !["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"].contains(&p)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            p,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut seen: Vec<&str> = Vec::new();
    for key in ["initContainers", "containers"] {
        for (i, c) in spec[key].as_array().into_iter().flatten().enumerate() {
            let at = format!("{path}.{key}[{i}]");
            let name = c["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(format!("{at}.name"), ""));
            } else {
                for msg in dns1123_label(name) {
                    errs.push(FieldError::invalid_str(format!("{at}.name"), name, msg));
                }
                if seen.contains(&name) {
                    errs.push(FieldError::duplicate(format!("{at}.name"), name));
                }
                seen.push(name);
            }
            if c["image"].as_str().unwrap_or_default().trim().is_empty() {
                errs.push(FieldError::required(format!("{at}.image"), ""));
            }
            for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                let n = p["containerPort"].as_i64().unwrap_or(0);
                let field = format!("{at}.ports[{j}].containerPort");
                if n == 0 {
                    errs.push(FieldError::required(field, ""));
                } else if !(1..=65535).contains(&n) {
                    errs.push(FieldError::invalid_raw(
                        field,
                        n.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
}

fn service(spec: &Value, errs: &mut Vec<FieldError>) {
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"].contains(&ty) {
        errs.push(FieldError::not_supported(
            "spec.type",
            ty,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let ports = spec["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    for (i, p) in ports.iter().enumerate() {
        if ports.len() > 1 && p["name"].as_str().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
        let n = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&n) {
            errs.push(FieldError::invalid_raw(
                format!("spec.ports[{i}].port"),
                n.to_string(),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}

fn crd(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if !name.is_empty() && name != format!("{plural}.{group}") {
        // apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go
        errs.push(FieldError::invalid_str(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions", ""));
    } else if versions
        .iter()
        .filter(|v| v["storage"] == Value::Bool(true))
        .count()
        != 1
    {
        errs.push(FieldError::invalid_raw(
            "spec.versions",
            "[]apiextensions.CustomResourceDefinitionVersion{...}",
            "must have exactly one version marked as storage version",
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        None => errs.push(FieldError::required("spec.scope", "")),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
}

/// Checks an update of an object against its old state: the fields the API server's
/// `ValidateXUpdate` keeps immutable. Only Jobs so far.
#[must_use]
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    match (group, kind) {
        ("batch", "Job") => job_spec_update(old, new),
        _ => Vec::new(),
    }
}

/// pkg/apis/batch/validation/validation.go (`ValidateJobSpecUpdate`, in its order:
/// completions, selector, the pod template through `validatePodTemplateUpdate`, completionMode,
/// podFailurePolicy, backoffLimitPerIndex, managedBy, successPolicy), each through
/// apimachinery's `ValidateImmutableField` ("field is immutable",
/// k8s.io/apimachinery/pkg/api/validation/generic.go `FieldImmutableErrorMsg`).
fn job_spec_update(old: &Value, new: &Value) -> Vec<FieldError> {
    const IMMUTABLE: &str = "field is immutable";
    let (o, n) = (&old["spec"], &new["spec"]);
    let mut errs = Vec::new();
    // Elastic indexed Jobs (on by default in 1.32) may change completions together with
    // parallelism (`validateCompletions`).
    let indexed = n["completionMode"] == "Indexed";
    if o["completions"] != n["completions"] {
        if !indexed {
            // `*int32`: field.Error prints the pointed-to number, or null.
            errs.push(FieldError::invalid_raw(
                "spec.completions",
                go_number_or_null(&n["completions"]),
                IMMUTABLE,
            ));
        } else if !n["completions"].is_null() && n["completions"] != n["parallelism"] {
            errs.push(FieldError::invalid_raw(
                "spec.completions",
                go_number_or_null(&n["completions"]),
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    if o["selector"] != n["selector"] {
        errs.push(FieldError::invalid_raw(
            "spec.selector",
            go_label_selector(&n["selector"]),
            IMMUTABLE,
        ));
    }
    // k8s.io/kubernetes/pkg/registry/batch/job/strategy.go (`validationOptionsForJob`): a
    // suspended Job that never started may change its scheduling directives.
    let mut old_template = o["template"].clone();
    let new_template = &n["template"];
    if o["suspend"] == true && old["status"]["startTime"].is_null() {
        for (parent, key) in [
            ("metadata", "labels"),
            ("metadata", "annotations"),
            ("spec", "nodeSelector"),
            ("spec", "tolerations"),
            ("spec", "schedulingGates"),
        ] {
            set_or_remove(&mut old_template, parent, key, &new_template[parent][key]);
        }
        let mut affinity = old_template["spec"]["affinity"].clone();
        if let Value::Object(a) = &mut affinity {
            a.remove("nodeAffinity");
        }
        let new_affinity = &new_template["spec"]["affinity"];
        let merged = match (new_affinity, &affinity) {
            (Value::Null, Value::Object(a)) if a.is_empty() => Value::Null,
            (Value::Null, a) => a.clone(),
            (Value::Object(na), _) => {
                let mut a = match affinity {
                    Value::Object(a) => a,
                    _ => serde_json::Map::new(),
                };
                match na.get("nodeAffinity") {
                    Some(v) => {
                        a.insert("nodeAffinity".to_string(), v.clone());
                    }
                    None => {
                        a.remove("nodeAffinity");
                    }
                }
                Value::Object(a)
            }
            _ => affinity,
        };
        set_or_remove(&mut old_template, "spec", "affinity", &merged);
    }
    if old_template != *new_template {
        // The real value is Go's `%#v` of the internal core.PodTemplateSpec: every field of
        // ObjectMeta and PodSpec in declaration order, pointers as `(*int64)(0xc000...)`
        // addresses that differ on every request, so no fixed text can equal it. Only the
        // type's name is kept; the fields are elided.
        errs.push(FieldError::invalid_raw(
            "spec.template",
            "core.PodTemplateSpec{...}",
            IMMUTABLE,
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        if o[key] != n[key] {
            let rendered = match &n[key] {
                Value::Null => "null".to_string(),
                Value::String(s) => go_quote(s),
                Value::Number(num) => num.to_string(),
                // Structs print as Go's `%#v`; approximated by their JSON.
                other => other.to_string(),
            };
            errs.push(FieldError::invalid_raw(
                format!("spec.{key}"),
                rendered,
                IMMUTABLE,
            ));
        }
    }
    errs
}

fn set_or_remove(obj: &mut Value, parent: &str, key: &str, value: &Value) {
    if let Value::Object(p) = &mut obj[parent] {
        if value.is_null() {
            p.remove(key);
        } else {
            p.insert(key.to_string(), value.clone());
        }
    } else if !value.is_null()
        && let Value::Object(o) = obj
    {
        o.insert(parent.to_string(), serde_json::json!({ key: value }));
    }
}

fn go_number_or_null(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => "null".to_string(),
    }
}

/// A `*metav1.LabelSelector` as field.Error prints it: the pointed-to struct with Go's `%#v`
/// (the value type has no `String` method; generated.pb.go defines it on the pointer).
fn go_label_selector(sel: &Value) -> String {
    if sel.is_null() {
        return "null".to_string();
    }
    let labels = if sel["matchLabels"].is_object() {
        crate::sim::store::error::go_string_map(&sel["matchLabels"])
    } else {
        "map[string]string(nil)".to_string()
    };
    let exprs = match sel["matchExpressions"].as_array() {
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|r| {
                    let values = match r["values"].as_array() {
                        Some(v) => format!(
                            "[]string{{{}}}",
                            v.iter()
                                .map(|x| go_quote(x.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        None => "[]string(nil)".to_string(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(r["key"].as_str().unwrap_or_default()),
                        go_quote(r["operator"].as_str().unwrap_or_default()),
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_messages() {
        let errs = validate("", "ConfigMap", &json!({"metadata": {"name": "Bad_Name"}}));
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        let errs = validate("", "Namespace", &json!({"metadata": {"name": "a.b"}}));
        assert!(errs[0].to_string().contains("(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
        let errs = validate(
            "",
            "Service",
            &json!({"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}}),
        );
        assert!(errs[0].to_string().contains("a DNS-1035 label"));
        assert!(
            validate("", "ConfigMap", &json!({"metadata": {}}))[0]
                .to_string()
                .ends_with("Required value: name or generateName is required")
        );
    }

    #[test]
    fn config_key_message() {
        let errs = validate(
            "",
            "ConfigMap",
            &json!({"metadata": {"name": "c"}, "data": {"a b": "x"}}),
        );
        assert_eq!(
            errs[0].to_string(),
            "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        );
    }

    #[test]
    fn deployment_rules() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let msgs: Vec<String> = validate("apps", "Deployment", &d)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            msgs,
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`".to_string(),
                "spec.template.spec.containers[0].image: Required value".to_string(),
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'".to_string(),
            ]
        );
    }

    #[test]
    fn job_restart_policy() {
        let j = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(
            validate("batch", "Job", &j)[0].to_string(),
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        );
    }
}
