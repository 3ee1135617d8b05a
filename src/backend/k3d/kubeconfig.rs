//! The kubeconfig `k3d kubeconfig get <name>` prints, and clients built from it.
//!
//! k3d prints a `---` separator and then a kubeconfig whose cluster, context and user are
//! renamed `k3d-<name>` and `admin@k3d-<name>`, with `current-context: k3d-<name>` and the
//! server at `https://<api host>:<port>` (`pkg/client/kubeconfig.go`, `KubeconfigGet`).

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::K3dError;
use super::list::snippet;

/// A cluster's admin kubeconfig, as k3d printed it.
#[derive(Debug, Clone)]
pub struct ClusterKubeconfig {
    cluster: String,
    context: String,
    yaml: String,
    kubeconfig: Kubeconfig,
}

impl ClusterKubeconfig {
    /// Parses the output of `k3d kubeconfig get <cluster>`.
    ///
    /// # Errors
    /// [`K3dError::Unparsable`] when it is not YAML, not a kubeconfig, or lacks the context
    /// `k3d-<cluster>` with a server address.
    pub fn parse(stdout: &str, cluster: &str, command: &str) -> Result<Self, K3dError> {
        let unparsable = |source: Box<dyn std::error::Error + Send + Sync>| K3dError::Unparsable {
            what: "kubeconfig",
            command: command.to_owned(),
            snippet: snippet(stdout),
            source,
        };
        let docs = crate::yaml::documents(stdout).map_err(|e| unparsable(Box::new(e)))?;
        let first = docs
            .into_iter()
            .next()
            .ok_or_else(|| unparsable("the output holds no YAML document".into()))?;
        let kubeconfig: Kubeconfig =
            serde_json::from_value(first).map_err(|e| unparsable(Box::new(e)))?;

        let context = format!("k3d-{cluster}");
        let named = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .ok_or_else(|| unparsable(format!("it has no context named {context}").into()))?;
        let cluster_ref = named
            .context
            .as_ref()
            .map(|c| c.cluster.clone())
            .ok_or_else(|| unparsable(format!("context {context} is empty").into()))?;
        let has_server = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == cluster_ref)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.as_ref())
            .is_some_and(|s| !s.is_empty());
        if !has_server {
            return Err(unparsable(
                format!("cluster entry {cluster_ref} has no server address").into(),
            ));
        }
        Ok(Self {
            cluster: cluster.to_owned(),
            context,
            yaml: stdout.trim_start().to_owned(),
            kubeconfig,
        })
    }

    /// The kubeconfig text, ready to write to a file for `kubectl --kubeconfig`.
    #[must_use]
    pub fn yaml(&self) -> &str {
        &self.yaml
    }

    /// The context to use (`k3d-<cluster>`).
    #[must_use]
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The API server address.
    #[must_use]
    pub fn server(&self) -> Option<&str> {
        let ctx = self
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == self.context)?
            .context
            .as_ref()?;
        self.kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)?
            .cluster
            .as_ref()?
            .server
            .as_deref()
    }

    /// The parsed kubeconfig.
    #[must_use]
    pub fn kubeconfig(&self) -> &Kubeconfig {
        &self.kubeconfig
    }

    /// A client configuration for this cluster's context.
    ///
    /// # Errors
    /// [`K3dError::Kubeconfig`] when kube-rs rejects it (bad certificates, for instance).
    pub async fn config(&self) -> Result<kube::Config, K3dError> {
        let options = KubeConfigOptions {
            context: Some(self.context.clone()),
            ..KubeConfigOptions::default()
        };
        kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &options)
            .await
            .map_err(|source| K3dError::Kubeconfig {
                cluster: self.cluster.clone(),
                source,
            })
    }

    /// A client for this cluster.
    ///
    /// # Errors
    /// [`K3dError::Kubeconfig`] or [`K3dError::Client`] when no client can be built.
    pub async fn client(&self) -> Result<kube::Client, K3dError> {
        let config = self.config().await?;
        kube::Client::try_from(config).map_err(|source| K3dError::Client {
            cluster: self.cluster.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `k3d kubeconfig get relapse-three-nodes-e5f6g7h8`, recorded shape with throwaway keys.
    const SAMPLE: &str = include_str!("../../../tests/data/k3d/kubeconfig.yaml");
    const NAME: &str = "relapse-three-nodes-e5f6g7h8";

    #[test]
    fn reads_the_context_k3d_writes() {
        let kc = ClusterKubeconfig::parse(SAMPLE, NAME, "k3d kubeconfig get x").unwrap();
        assert_eq!(kc.context(), "k3d-relapse-three-nodes-e5f6g7h8");
        assert_eq!(kc.server(), Some("https://0.0.0.0:38517"));
        assert!(kc.yaml().starts_with("---\napiVersion: v1\n"));
        assert_eq!(
            kc.kubeconfig().auth_infos[0].name,
            "admin@k3d-relapse-three-nodes-e5f6g7h8"
        );
    }

    #[tokio::test]
    async fn builds_a_client_configuration() {
        let kc = ClusterKubeconfig::parse(SAMPLE, NAME, "k3d kubeconfig get x").unwrap();
        let config = kc.config().await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://0.0.0.0:38517/");
        assert_eq!(config.default_namespace, "default");
        kc.client().await.unwrap();
    }

    #[test]
    fn another_clusters_kubeconfig_is_refused() {
        let err =
            ClusterKubeconfig::parse(SAMPLE, "relapse-other", "k3d kubeconfig get relapse-other")
                .unwrap_err();
        let K3dError::Unparsable { what, source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*what, "kubeconfig");
        assert_eq!(
            source.to_string(),
            "it has no context named k3d-relapse-other"
        );
    }

    #[test]
    fn non_yaml_and_empty_output_are_refused() {
        for bad in ["", "---\n", "a: [", "[1, 2]"] {
            let err = ClusterKubeconfig::parse(bad, NAME, "k3d").unwrap_err();
            assert!(
                matches!(err, K3dError::Unparsable { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn a_context_without_server_is_refused() {
        let text = SAMPLE.replace("    server: https://0.0.0.0:38517\n", "");
        let err = ClusterKubeconfig::parse(&text, NAME, "k3d").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to parse the kubeconfig printed by `k3d`"),
            "{err}"
        );
    }
}
