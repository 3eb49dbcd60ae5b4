//! Holder JSON, the value at every held key (a public API).
//!
//! `{"host":"node2","pid":4242,"started":"2026-06-12T10:15:00Z","cmd":"my-daemon --port 8080"}`
//!
//! Readers ignore unknown fields; a value that does not parse is someone else's key and
//! still counts in the ranking (see [`crate::ranking`]).
use serde::{Deserialize, Serialize};

/// Longest `cmd` field, in bytes.
pub const CMD_LEN_MAX: usize = 256;
/// Longest published value (`elect --value`), in bytes: an address or a URL, not a payload
/// (every `--who` and `--watch` reads it, and it is printed on one line).
pub const VALUE_LEN_MAX: usize = 1024;

/// Who holds (or waits for) a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Hostname of the wrapper.
    pub host: String,
    /// The wrapper's pid.
    pub pid: u32,
    /// When the wrapper started campaigning, RFC 3339 UTC.
    pub started: String,
    /// The command, argv joined by spaces, cut to [`CMD_LEN_MAX`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// When it began holding, RFC 3339 UTC: written over the value on acquiring (the key,
    /// and so its create revision — the fencing token — stay the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since: Option<String>,
    /// The value the holder publishes (`elect --value`, say its address): `--who` and
    /// `--watch` print it, the child gets it as `CONCH_VALUE`. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// An office candidate's `--priority`, when above 0 (`--who` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

impl Holder {
    /// One line of JSON.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        // A Holder is strings, numbers and options: serde_json has nothing to refuse.
        debug_assert!(!json.is_empty(), "a holder serialised to nothing");
        json
    }

    /// Reads holder JSON; `None` when the value is not ours.
    pub fn decode(value: &[u8]) -> Option<Holder> {
        serde_json::from_slice(value).ok()
    }
}

/// Checks a value to publish: 1 to [`VALUE_LEN_MAX`] bytes, no spaces or control
/// characters (`--watch --value-only` prints `office value rev` lines).
pub fn check_value(value: &str) -> Result<(), String> {
    const RULE: &str = "values are 1-1024 bytes with no spaces or control characters, like 10.0.0.5:5432";
    if value.is_empty() {
        return Err(format!("--value is empty; {RULE}"));
    }
    if value.len() > VALUE_LEN_MAX {
        return Err(format!("--value is {} bytes long; {RULE}", value.len()));
    }
    if let Some(bad) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("--value contains {bad:?}; {RULE}"));
    }
    Ok(())
}

/// Joins argv by spaces and cuts the result to [`CMD_LEN_MAX`] bytes on a UTF-8 boundary.
pub fn cmd_field(argv: &[String]) -> String {
    let mut cmd = argv.join(" ");
    if cmd.len() > CMD_LEN_MAX {
        let mut cut = CMD_LEN_MAX;
        while !cmd.is_char_boundary(cut) {
            cut -= 1;
        }
        cmd.truncate(cut);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_the_documented_order() {
        let h = Holder {
            host: "node2".into(),
            pid: 4242,
            started: "2026-06-12T10:15:00Z".into(),
            cmd: Some("my-daemon --port 8080".into()),
            held_since: None,
            value: None,
            priority: None,
        };
        assert_eq!(
            String::from_utf8(h.encode()).unwrap(),
            r#"{"host":"node2","pid":4242,"started":"2026-06-12T10:15:00Z","cmd":"my-daemon --port 8080"}"#
        );
        assert_eq!(Holder::decode(&h.encode()), Some(h));
    }

    #[test]
    fn decodes_leniently_and_refuses_foreign_values() {
        let table: &[(&[u8], bool)] = &[
            (br#"{"host":"a","pid":1,"started":"x","extra":[1,2]}"#, true),
            (br#"{"host":"a","pid":1,"started":"x"}"#, true),
            (b"etcdctl-value", false),
            (b"", false),
            (br#"{"host":"a"}"#, false),
            (b"\xff\xfe", false),
        ];
        for (value, ok) in table {
            assert_eq!(Holder::decode(value).is_some(), *ok, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn the_value_is_published_and_old_records_still_parse() {
        let old = br#"{"host":"a","pid":1,"started":"x","cmd":"c","held_since":"y"}"#;
        let h = Holder::decode(old).unwrap();
        assert_eq!(h.value, None);
        let with = Holder { value: Some("127.0.0.5:5432".into()), ..h };
        let text = String::from_utf8(with.encode()).unwrap();
        assert!(text.ends_with(r#","held_since":"y","value":"127.0.0.5:5432"}"#), "{text}");
        assert_eq!(Holder::decode(text.as_bytes()), Some(with));
    }

    #[test]
    fn values_are_checked() {
        for ok in ["127.0.0.5:5432", "https://db.example/x?y=1", "é", &"v".repeat(VALUE_LEN_MAX)] {
            assert_eq!(check_value(ok), Ok(()), "{ok}");
        }
        let table: &[(&str, &str)] = &[
            ("", "--value is empty"),
            ("a b", "contains ' '"),
            ("a\nb", "contains '\\n'"),
            ("a\tb", "contains '\\t'"),
        ];
        for (bad, want) in table {
            let e = check_value(bad).unwrap_err();
            assert!(e.contains(want) && e.contains("1-1024 bytes"), "{bad:?}: {e}");
        }
        let e = check_value(&"v".repeat(VALUE_LEN_MAX + 1)).unwrap_err();
        assert!(e.contains("is 1025 bytes long"), "{e}");
    }

    #[test]
    fn cmd_is_cut_on_a_char_boundary() {
        assert_eq!(cmd_field(&["a".into(), "b c".into()]), "a b c");
        let long = "é".repeat(200); // 400 bytes
        let cut = cmd_field(&[long]);
        assert_eq!(cut.len(), 256);
        let odd = format!("x{}", "é".repeat(200)); // 401 bytes, boundary at odd offsets
        let cut = cmd_field(&[odd]);
        assert_eq!(cut.len(), 255);
        assert!(cut.is_char_boundary(cut.len()));
    }
}
