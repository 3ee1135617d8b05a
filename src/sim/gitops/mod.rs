//! GitOps controllers the simulated cluster can run beside Kubernetes' own, enabled per
//! scenario (`gitops:`): [`argocd`], a stand-in for Argo CD's application controller and repo
//! server.

pub mod argocd;
