//! Field sets of server-side apply (structured-merge-diff `fieldpath.Set`).
