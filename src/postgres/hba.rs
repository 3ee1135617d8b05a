//! `pg_hba.conf` for a server shared by several scenarios.
//!
//! The file is server-wide, but every scenario's rules are rewritten so that they only match
//! the scenario's own role names: a scenario's `all` users become the list of role names it
//! reserved. Reserved names are unique among the live tenants of a server (see
//! [`Tenant`](super::Tenant)), so the blocks of two scenarios never match the same connection
//! and their order does not matter; a connection by a role nobody reserved matches no line and
//! gets the server's `no pg_hba.conf entry` error, as it would on a server without such a rule.

use std::collections::BTreeSet;

use crate::scenario::{HbaMethod, HbaRule, HbaType};

/// The user name of the line that proves the server loaded a given generation of the file.
pub(crate) fn probe_user(generation: u64) -> String {
    format!("relapse-hba-generation-{generation}")
}

/// The line that makes the probe user's connections fail with "rejects connection" once
/// this generation is loaded (before, they fail with "no pg_hba.conf entry").
pub(crate) fn probe_line(generation: u64) -> String {
    format!("host postgres \"{}\" all reject", probe_user(generation))
}

/// One scenario's lines.
///
/// No rules means the server default of a managed database: any reserved role, with or
/// without TLS, by SCRAM password.
pub(crate) fn tenant_lines(rules: &[HbaRule], roles: &BTreeSet<String>) -> Vec<String> {
    let default = [HbaRule {
        kind: HbaType::Host,
        database: "all".to_owned(),
        user: "all".to_owned(),
        method: HbaMethod::ScramSha256,
    }];
    let rules = if rules.is_empty() {
        &default[..]
    } else {
        rules
    };
    rules
        .iter()
        .filter_map(|rule| {
            let users = if rule.user == "all" {
                if roles.is_empty() {
                    return None;
                }
                roles.iter().map(|r| quote(r)).collect::<Vec<_>>().join(",")
            } else {
                quote(&rule.user)
            };
            let database = if rule.database == "all" {
                "all".to_owned()
            } else {
                quote(&rule.database)
            };
            let kind = match rule.kind {
                HbaType::Host => "host",
                HbaType::Hostssl => "hostssl",
                HbaType::Hostnossl => "hostnossl",
            };
            let method = match rule.method {
                HbaMethod::ScramSha256 => "scram-sha-256",
                HbaMethod::Md5 => "md5",
                HbaMethod::Reject => "reject",
            };
            Some(format!("{kind} {database} {users} all {method}"))
        })
        .collect()
}

/// A name in double quotes, so that keywords (`all`, `replication`) and odd characters are
/// taken literally. Names containing `"` are refused before they get here.
fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    fn rule(kind: HbaType, database: &str, user: &str, method: HbaMethod) -> HbaRule {
        HbaRule {
            kind,
            database: database.to_owned(),
            user: user.to_owned(),
            method,
        }
    }

    #[test]
    fn no_rules_means_password_login_for_the_scenarios_roles() {
        assert_eq!(
            tenant_lines(&[], &roles(&["backstage", "keycloak"])),
            vec!["host all \"backstage\",\"keycloak\" all scram-sha-256"]
        );
    }

    #[test]
    fn all_users_become_the_reserved_roles() {
        let rules = [
            rule(HbaType::Hostssl, "all", "all", HbaMethod::ScramSha256),
            rule(HbaType::Host, "app", "backstage", HbaMethod::Md5),
            rule(HbaType::Hostnossl, "all", "all", HbaMethod::Reject),
        ];
        assert_eq!(
            tenant_lines(&rules, &roles(&["backstage"])),
            vec![
                "hostssl all \"backstage\" all scram-sha-256",
                "host \"app\" \"backstage\" all md5",
                "hostnossl all \"backstage\" all reject",
            ]
        );
    }

    #[test]
    fn rules_for_all_users_vanish_without_roles() {
        let rules = [rule(HbaType::Host, "all", "all", HbaMethod::ScramSha256)];
        assert!(tenant_lines(&rules, &roles(&[])).is_empty());
    }

    #[test]
    fn probe_line_rejects_its_generation_user() {
        assert_eq!(
            probe_line(7),
            "host postgres \"relapse-hba-generation-7\" all reject"
        );
    }
}
