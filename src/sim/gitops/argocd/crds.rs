//! What Argo CD's installation puts in a cluster before any Application: its namespace, the
//! `Application` and `AppProject` CRDs of the release (vendored by `ci/argocd/vendor.sh` from
//! `manifests/crds/`), and the `default` project.

use std::io::Read as _;

use serde_json::{Value, json};

use super::client::{ApplyOptions, Client, ClientError};
use super::{API_VERSION, NAMESPACE};

static APPLICATION_CRD: &[u8] = include_bytes!("crds/application-crd.yaml.gz");
static APPPROJECT_CRD: &[u8] = include_bytes!("crds/appproject-crd.yaml.gz");

/// The vendored CRDs, parsed once per process (the Application CRD is 400 KB of YAML, and
/// every cluster of a run installs it).
///
/// # Errors
/// When a vendored file does not decompress or parse (a broken vendoring, not user input).
pub fn definitions() -> Result<Vec<Value>, String> {
    static PARSED: std::sync::OnceLock<Result<Vec<Value>, String>> = std::sync::OnceLock::new();
    PARSED.get_or_init(parse).clone()
}

fn parse() -> Result<Vec<Value>, String> {
    [APPLICATION_CRD, APPPROJECT_CRD]
        .iter()
        .map(|gz| {
            let mut text = String::new();
            flate2::read::GzDecoder::new(*gz)
                .read_to_string(&mut text)
                .map_err(|e| format!("vendored Argo CD CRD does not decompress: {e}"))?;
            crate::yaml::value(&text).map_err(|e| format!("vendored Argo CD CRD: {e}"))
        })
        .collect()
}

/// The project every Application may use unless told otherwise, as the API server creates it
/// on start (server/server.go, `initializeDefaultProject`).
#[must_use]
pub fn default_project() -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": NAMESPACE},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    })
}

/// Installs Argo CD's namespace, CRDs and default project.
///
/// # Errors
/// When the API server refuses one of them.
pub fn install(client: &Client) -> Result<(), ClientError> {
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let opts = ApplyOptions {
        server_side: true,
        dry_run: false,
    };
    client.apply(&namespace, opts)?;
    for crd in definitions().map_err(|message| ClientError {
        code: 0,
        reason: String::new(),
        message,
    })? {
        client.apply(&crd, opts)?;
    }
    client.apply(&default_project(), opts)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_crds_are_the_releases() {
        let crds = definitions().expect("vendored CRDs parse");
        let names: Vec<&str> = crds
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["applications.argoproj.io", "appprojects.argoproj.io"]
        );
        let schema = &crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert!(
            schema["properties"]["status"]["properties"]["operationState"].is_object(),
            "the Application CRD declares status.operationState"
        );
    }
}
