//! A sync operation (gitops-engine `pkg/sync/sync_context.go` as vendored in Argo CD v3.5.1):
//! phases, waves, hooks and their delete policies, pruning, and the `operationState` it
//! reports.
