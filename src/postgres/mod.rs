//! PostgreSQL servers for scenarios: ephemeral local servers, containers and existing servers.
