//! The `/conch/v1/...` key layout (a public API) and name validation.
//!
//! ```text
//! /conch/v1/elect/<office>/<lease-hex>
//! /conch/v1/sema/<name>/<max>/<lease-hex>
//! /conch/v1/prio/elect/<office>/<1000 - priority, 4 digits>/<lease-hex>
//! ```
//! The last is an office waiter's priority marker (`--priority` above 0, on the waiter's
//! lease), outside the queue prefix so no ranking read counts it (see `crate::hold`). Its
//! segment is the priority's complement, so etcd's own key order puts the highest priority
//! first and a limit-1 range needs no sort (etcd reads one key, however many markers).
//! `<lease-hex>` is the lease id in lowercase hex without padding, as etcd's own
//! concurrency recipes write it, so `etcdctl elect` / `etcdctl lock` are rivals of ours.
use crate::ids::LeaseId;

/// Root of every key conch writes.
pub const ROOT: &str = "/conch/v1/";
/// Longest name accepted, in bytes.
pub const NAME_LEN_MAX: usize = 128;

/// A validated office, semaphore or job name: 1–128 bytes of `[A-Za-z0-9._:@-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty; names are 1-128 bytes of [A-Za-z0-9._:@-]")]
    Empty,
    /// The name is longer than [`NAME_LEN_MAX`].
    #[error("name is {len} bytes long; names are 1-128 bytes of [A-Za-z0-9._:@-]")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds a character outside the allowed set.
    #[error("name {name:?} contains {bad:?}; names are 1-128 bytes of [A-Za-z0-9._:@-]")]
    BadChar {
        /// The name as given.
        name: String,
        /// The first character not allowed.
        bad: char,
    },
}

impl Name {
    /// Validates a name.
    pub fn new(name: &str) -> Result<Name, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > NAME_LEN_MAX {
            return Err(NameError::TooLong { len: name.len() });
        }
        if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
            return Err(NameError::BadChar { name: name.to_string(), bad });
        }
        Ok(Name(name.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
}

/// The prefix under which the candidates of an office live (with the trailing `/`).
pub fn elect_prefix(office: &Name) -> String {
    format!("{ROOT}elect/{}/", office.as_str())
}

/// The prefix under which the contenders of a semaphore of capacity `max` live.
pub fn sema_prefix(name: &Name, max: u32) -> String {
    format!("{ROOT}sema/{}/{max}/", name.as_str())
}

/// The prefix holding every capacity of a semaphore name (to warn about disagreements).
pub fn sema_name_prefix(name: &Name) -> String {
    format!("{ROOT}sema/{}/", name.as_str())
}

/// Highest `--priority`.
pub const PRIORITY_MAX: u32 = 1000;

/// The prefix under which an office's priority markers live (with the trailing `/`).
pub fn prio_prefix(office: &Name) -> String {
    format!("{ROOT}prio/elect/{}/", office.as_str())
}

/// The priority marker of the candidate on `lease`: `PRIORITY_MAX - priority`,
/// zero-padded, so ascending key order is descending priority.
pub fn prio_marker(prio_prefix: &str, priority: u32, lease: LeaseId) -> String {
    format!("{prio_prefix}{:04}/{lease}", PRIORITY_MAX.saturating_sub(priority))
}

/// A marker's priority and lease, `None` for a key not of [`prio_marker`]'s shape.
pub fn parse_prio_marker(prio_prefix: &str, key: &str) -> Option<(u32, LeaseId)> {
    let (priority, lease) = key.strip_prefix(prio_prefix)?.split_once('/')?;
    let valid = priority.len() == 4 && priority.bytes().all(|b| b.is_ascii_digit());
    let rank: u32 = priority.parse().ok().filter(|p| valid && *p <= PRIORITY_MAX)?;
    Some((PRIORITY_MAX - rank, parse_lease_hex(lease)?))
}

/// A candidate's own key: the prefix followed by its lease id in lowercase hex.
pub fn member_key(prefix: &str, lease: LeaseId) -> String {
    format!("{prefix}{lease}")
}

/// Parses a lease id in lowercase hex without padding; `None` for anything else.
pub fn parse_lease_hex(text: &str) -> Option<LeaseId> {
    let canonical = !text.is_empty()
        && text.len() <= 16
        && !(text.len() > 1 && text.starts_with('0'))
        && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return None;
    }
    let raw = u64::from_str_radix(text, 16).ok()?;
    i64::try_from(raw).ok().map(LeaseId)
}

/// A key under `/conch/v1/` taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParsedKey {
    /// `/conch/v1/elect/<office>/<member>`.
    Elect {
        /// The office.
        office: Name,
        /// The last segment: a lease id in hex, or something another tool wrote.
        member: Member,
    },
    /// `/conch/v1/sema/<name>/<max>/<member>`.
    Sema {
        /// The semaphore name.
        name: Name,
        /// Its capacity.
        max: u32,
        /// The last segment.
        member: Member,
    },
}

/// The last segment of a holder key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// A lease id in canonical hex (ours or a rival recipe's).
    Lease(LeaseId),
    /// Anything else (a `--spread` hostname, or a key another tool wrote).
    Other(String),
}

/// Why a key could not be read as one of ours.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// It does not start with [`ROOT`].
    #[error("key is not under {ROOT}")]
    NotOurs,
    /// It starts with [`ROOT`] but does not follow the layout.
    #[error("key does not follow the /conch/v1/ layout")]
    Malformed,
}

/// Takes a holder key apart (the inverse of [`elect_prefix`]/[`sema_prefix`] + [`member_key`]).
pub fn parse_key(key: &str) -> Result<ParsedKey, KeyError> {
    let rest = key.strip_prefix(ROOT).ok_or(KeyError::NotOurs)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let member = |text: &str| match parse_lease_hex(text) {
        Some(lease) => Member::Lease(lease),
        None => Member::Other(text.to_string()),
    };
    match parts.as_slice() {
        ["elect", office, last] if !last.is_empty() => {
            Ok(ParsedKey::Elect { office: Name::new(office).map_err(|_| KeyError::Malformed)?, member: member(last) })
        }
        ["sema", name, max, last] if !last.is_empty() => Ok(ParsedKey::Sema {
            name: Name::new(name).map_err(|_| KeyError::Malformed)?,
            max: parse_max(max).ok_or(KeyError::Malformed)?,
            member: member(last),
        }),
        _ => Err(KeyError::Malformed),
    }
}

fn parse_max(text: &str) -> Option<u32> {
    if text.starts_with('0') || text.starts_with('+') {
        return None;
    }
    text.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        let good = ["a", "my-job", "A.b_c:d@e-f", &"x".repeat(128)];
        for name in good {
            assert!(Name::new(name).is_ok(), "{name}");
        }
        let table: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("a/b", NameError::BadChar { name: "a/b".into(), bad: '/' }),
            ("a b", NameError::BadChar { name: "a b".into(), bad: ' ' }),
            ("é", NameError::BadChar { name: "é".into(), bad: 'é' }),
        ];
        for (name, err) in table {
            assert_eq!(Name::new(name).as_ref().err(), Some(err), "{name}");
        }
        assert_eq!(Name::new(&"x".repeat(129)), Err(NameError::TooLong { len: 129 }));
    }

    #[test]
    fn lease_hex_is_lowercase_unpadded() {
        assert_eq!(LeaseId(0x694d7e5c3a2b1f0e).to_string(), "694d7e5c3a2b1f0e");
        assert_eq!(LeaseId(255).to_string(), "ff");
        let table: &[(&str, Option<i64>)] = &[
            ("ff", Some(255)),
            ("694d7e5c3a2b1f0e", Some(0x694d7e5c3a2b1f0e)),
            ("FF", None),
            ("0ff", None),
            ("", None),
            ("ffffffffffffffff", None),
            ("node1", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_lease_hex(text), want.map(LeaseId), "{text}");
        }
    }

    #[test]
    fn priority_markers_round_trip_and_sort_by_priority() {
        let prefix = prio_prefix(&Name::new("db").unwrap());
        assert_eq!(prefix, "/conch/v1/prio/elect/db/");
        let marker = prio_marker(&prefix, 7, LeaseId(0x1f));
        assert_eq!(marker, "/conch/v1/prio/elect/db/0993/1f");
        // Key order is priority order, highest first.
        assert!(prio_marker(&prefix, 10, LeaseId(0xffff)) < prio_marker(&prefix, 9, LeaseId(1)));
        assert!(prio_marker(&prefix, 1000, LeaseId(0xffff)) < prio_marker(&prefix, 1, LeaseId(1)));
        let table: &[(&str, Option<(u32, LeaseId)>)] = &[
            ("/conch/v1/prio/elect/db/0993/1f", Some((7, LeaseId(0x1f)))),
            ("/conch/v1/prio/elect/db/0000/a", Some((1000, LeaseId(0xa)))),
            ("/conch/v1/prio/elect/db/0999/a", Some((1, LeaseId(0xa)))),
            ("/conch/v1/prio/elect/db/1001/a", None),
            ("/conch/v1/prio/elect/db/993/1f", None),
            ("/conch/v1/prio/elect/db/0993/01f", None),
            ("/conch/v1/prio/elect/db/0993", None),
            ("/conch/v1/prio/elect/dbx/0993/1f", None),
            ("/conch/v1/elect/db/1f", None),
        ];
        for (key, want) in table {
            assert_eq!(parse_prio_marker(&prefix, key), *want, "{key}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let office = Name::new("db-primary").unwrap();
        let key = member_key(&elect_prefix(&office), LeaseId(0xabc));
        assert_eq!(key, "/conch/v1/elect/db-primary/abc");
        assert_eq!(
            parse_key(&key),
            Ok(ParsedKey::Elect { office: office.clone(), member: Member::Lease(LeaseId(0xabc)) })
        );
        let sema = Name::new("backup").unwrap();
        let key = member_key(&sema_prefix(&sema, 3), LeaseId(0x10));
        assert_eq!(key, "/conch/v1/sema/backup/3/10");
        assert_eq!(
            parse_key(&key),
            Ok(ParsedKey::Sema { name: sema.clone(), max: 3, member: Member::Lease(LeaseId(16)) })
        );
        assert_eq!(
            parse_key("/conch/v1/sema/backup/3/node1"),
            Ok(ParsedKey::Sema { name: sema, max: 3, member: Member::Other("node1".into()) })
        );
        for bad in ["/conch/v1/sema/backup/0/1", "/conch/v1/elect/x", "/conch/v1/sema/a/03/1", "/conch/v1/elect/a/b/c"]
        {
            assert_eq!(parse_key(bad), Err(KeyError::Malformed), "{bad}");
        }
        assert_eq!(parse_key("/other"), Err(KeyError::NotOurs));
    }

    #[test]
    fn a_prefix_never_matches_a_longer_capacity() {
        let name = Name::new("x").unwrap();
        assert!(!sema_prefix(&name, 10).starts_with(&sema_prefix(&name, 1)));
    }
}
