//! Fenced writes from a holder's child: `conch put`, `conch del`, `conch txn`.
//!
//! A child started by `conch elect` or `conch sema` finds its hold in its environment:
//! `CONCH_KEY` (the full key) and `CONCH_REV` (that key's create revision, the fencing
//! token). A fenced write is one etcd transaction whose outer compare is the **guard**,
//! `create_revision(CONCH_KEY) == CONCH_REV`; only when it holds does the user's own
//! transaction (its compares, its success or failure branch) run. So a write from a
//! deposed holder — its key deleted, expired, or re-created by a successor with a newer
//! revision — never lands, however late it reaches etcd.
//!
//! This module is pure: the txn text parser (etcdctl's `txn` format), the guard from the
//! environment, the request, and the answer's exit code and text. The driver makes the one
//! call (`driver-etcd/src/fenced.rs`); the simulator applies the same request to SimEtcd.
//!
//! # The txn format (as `etcdctl txn` reads stdin)
//!
//! ```text
//! value("config/mode") = "blue"      <- compares, one a line: c|create, m|mod, ver|version,
//!                                       val|value, lease; =, !=, <, >; key and value quoted
//! put config/mode "green"            <- success ops: put KEY VALUE, del KEY [--prefix],
//! get config/mode                       get KEY [--prefix]
//!                                    <- blank line
//! put config/error "not blue"        <- failure ops
//! ```
//!
//! Lines are trimmed; a blank line ends a block. Unlike etcdctl, the end of the input also
//! ends the block it is in (etcdctl fails with "EOF" unless every block is closed).
use crate::ids::Revision;
use crate::output::ExitCode;
use crate::sabotage::Sabotage;

/// Keys conch writes itself: a fenced write may not touch them (a child deleting its own
/// holder key would resign behind its wrapper's back).
pub const RESERVED_PREFIX: &str = "/conch/";
/// Most compares or ops in one block (etcd's default `--max-txn-ops` is 128, and the
/// guard takes one compare).
pub const TXN_OPS_MAX: usize = 127;
/// Longest txn text read from stdin (etcd refuses requests over 1.5 MiB anyway).
pub const TXN_TEXT_MAX: usize = 1536 * 1024;

/// What a compare looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpTarget {
    /// `c("k")` / `create("k")`: the create revision (0 when absent).
    Create,
    /// `m("k")` / `mod("k")`: the last modification's revision.
    Mod,
    /// `ver("k")` / `version("k")`: the number of writes since creation.
    Version,
    /// `val("k")` / `value("k")`: the bytes.
    Value,
    /// `lease("k")`: the lease id (decimal).
    Lease,
}

/// A compare's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

impl CmpOp {
    /// Whether `left op right` holds.
    pub fn holds<T: Ord + ?Sized>(self, left: &T, right: &T) -> bool {
        match self {
            CmpOp::Equal => left == right,
            CmpOp::NotEqual => left != right,
            CmpOp::Less => left < right,
            CmpOp::Greater => left > right,
        }
    }
}

/// The right-hand side of a compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmpValue {
    /// A revision, version or lease.
    Number(i64),
    /// A value's bytes.
    Bytes(Vec<u8>),
}

/// One compare of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key.
    pub key: String,
    /// What of it.
    pub target: CmpTarget,
    /// The operator.
    pub op: CmpOp,
    /// Compared with this.
    pub value: CmpValue,
}

/// One operation of a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// `put KEY VALUE`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// `del KEY [--prefix]`.
    Delete {
        /// The key (or prefix).
        key: String,
        /// Every key starting with `key`.
        prefix: bool,
    },
    /// `get KEY [--prefix]`.
    Get {
        /// The key (or prefix).
        key: String,
        /// Every key starting with `key`.
        prefix: bool,
    },
}

/// A user's transaction: compares, success ops, failure ops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnSpec {
    /// All must hold for the success branch.
    pub compares: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<TxnOp>,
    /// Run otherwise.
    pub failure: Vec<TxnOp>,
}

/// The hold a fenced write is guarded by: `create_revision(key) == rev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The holder key (`CONCH_KEY`).
    pub key: String,
    /// Its create revision (`CONCH_REV`).
    pub rev: Revision,
}

/// The result of one op of the branch that ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// A put landed.
    Put,
    /// A delete removed this many keys.
    Deleted(i64),
    /// A get found these (key, value) pairs.
    Got(Vec<(String, Vec<u8>)>),
}

/// What etcd answered to a fenced transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnAnswer {
    /// The guard held: the hold was ours when the transaction ran.
    pub held: bool,
    /// The user's compares held (the success branch ran); false when not `held`.
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub rev: Revision,
    /// One result per op of the branch that ran (empty when not `held`).
    pub results: Vec<OpResult>,
}

impl TxnAnswer {
    /// `conch put`/`del`/`txn`'s exit: 0 written (success branch), 1 failure branch ran,
    /// 70 hold gone (nothing written).
    pub fn exit_code(&self) -> ExitCode {
        match (self.held, self.succeeded) {
            (false, _) => ExitCode::LOST,
            (true, true) => ExitCode::OK,
            (true, false) => ExitCode::VACANT,
        }
    }

    /// `conch txn`'s stdout, as `etcdctl txn` prints it: `SUCCESS` or `FAILURE`, then each
    /// op's result after a blank line (`OK`, a count, or key and value lines).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![if self.succeeded { "SUCCESS" } else { "FAILURE" }.to_string()];
        for result in &self.results {
            lines.push(String::new());
            match result {
                OpResult::Put => lines.push("OK".to_string()),
                OpResult::Deleted(n) => lines.push(n.to_string()),
                OpResult::Got(kvs) => {
                    for (key, value) in kvs {
                        lines.push(key.clone());
                        lines.push(String::from_utf8_lossy(value).into_owned());
                    }
                }
            }
        }
        lines
    }
}

/// The guard from a child's environment (the values of `CONCH_KEY` and `CONCH_REV`); the
/// error names the variable that is missing or wrong (exit 64).
pub fn guard_from_env(key: Option<&str>, rev: Option<&str>) -> Result<Guard, String> {
    const OUTSIDE: &str = "is not set: conch put/del/txn run inside a command started by conch elect or conch sema";
    let key = key.filter(|k| !k.is_empty()).ok_or(format!("CONCH_KEY {OUTSIDE}"))?;
    let rev = rev.filter(|r| !r.is_empty()).ok_or(format!("CONCH_REV {OUTSIDE}"))?;
    if !key.starts_with(crate::keys::ROOT) {
        return Err(format!("CONCH_KEY {key:?} is not a conch holder key (they begin with {})", crate::keys::ROOT));
    }
    match rev.parse::<i64>() {
        Ok(r) if r > 0 => Ok(Guard { key: key.to_string(), rev: Revision(r) }),
        _ => Err(format!("CONCH_REV {rev:?} is not a revision (a whole number above 0)")),
    }
}

/// The one request a fenced write is: the guard around the user's transaction.
/// `Sabotage::UnguardedWrite` drops the guard (checker tests only).
pub fn request(guard: Guard, txn: TxnSpec, sabotage: Sabotage) -> crate::etcd::EtcdRequest {
    let guard = (sabotage != Sabotage::UnguardedWrite).then_some(guard);
    crate::etcd::EtcdRequest::FencedTxn { guard, txn }
}

/// `conch put KEY VALUE` as a transaction.
pub fn put(key: &str, value: &[u8]) -> Result<TxnSpec, String> {
    let op = TxnOp::Put { key: key.to_string(), value: value.to_vec() };
    check_op(&op).map_err(|e| format!("put: {e}"))?;
    Ok(TxnSpec { success: vec![op], ..TxnSpec::default() })
}

/// `conch del KEY [--prefix]` as a transaction.
pub fn del(key: &str, prefix: bool) -> Result<TxnSpec, String> {
    let op = TxnOp::Delete { key: key.to_string(), prefix };
    check_op(&op).map_err(|e| format!("del: {e}"))?;
    Ok(TxnSpec { success: vec![op], ..TxnSpec::default() })
}

/// Parses `etcdctl txn`'s stdin format (see the module doc). The error says which line is
/// wrong and what is allowed.
pub fn parse_txn(text: &str) -> Result<TxnSpec, String> {
    if text.len() > TXN_TEXT_MAX {
        return Err(format!("txn: the input is {} bytes; at most {TXN_TEXT_MAX} are read", text.len()));
    }
    let mut lines = text.lines().enumerate().map(|(n, l)| (n + 1, l.trim()));
    let mut block = || -> Vec<(usize, &str)> { lines.by_ref().take_while(|(_, l)| !l.is_empty()).collect() };
    let compares = block();
    let success = block();
    let failure = block();
    let rest: Vec<(usize, &str)> = lines.filter(|(_, l)| !l.is_empty()).collect();
    if let Some((n, line)) = rest.first() {
        return Err(format!(
            "txn: line {n} ({line:?}) comes after the failure block; the input is compares, a blank line, success ops, a blank line, failure ops"
        ));
    }
    for (name, count) in [("compares", compares.len()), ("success ops", success.len()), ("failure ops", failure.len())]
    {
        if count > TXN_OPS_MAX {
            return Err(format!("txn: {count} {name}; at most {TXN_OPS_MAX} in a block"));
        }
    }
    let err = |n: usize, line: &str, e: String| format!("txn: line {n} ({line:?}): {e}");
    let compares =
        compares.into_iter().map(|(n, l)| parse_compare(l).map_err(|e| err(n, l, e))).collect::<Result<_, _>>()?;
    let ops = |block: Vec<(usize, &str)>| -> Result<Vec<TxnOp>, String> {
        block
            .into_iter()
            .map(|(n, l)| parse_op(l).and_then(|op| check_op(&op).map(|()| op)).map_err(|e| err(n, l, e)))
            .collect()
    };
    let success = ops(success)?;
    let failure = ops(failure)?;
    Ok(TxnSpec { compares, success, failure })
}

/// Renders a transaction back into the txn format (`parse_txn(&render(t)) == t`).
pub fn render(txn: &TxnSpec) -> String {
    let mut text = String::new();
    for c in &txn.compares {
        let target = match c.target {
            CmpTarget::Create => "c",
            CmpTarget::Mod => "mod",
            CmpTarget::Version => "ver",
            CmpTarget::Value => "val",
            CmpTarget::Lease => "lease",
        };
        let op = match c.op {
            CmpOp::Equal => "=",
            CmpOp::NotEqual => "!=",
            CmpOp::Less => "<",
            CmpOp::Greater => ">",
        };
        let value = match &c.value {
            CmpValue::Number(n) => n.to_string().into_bytes(),
            CmpValue::Bytes(b) => b.clone(),
        };
        text += &format!("{target}({}) {op} {}\n", quote(c.key.as_bytes()), quote(&value));
    }
    for block in [&txn.success, &txn.failure] {
        text.push('\n');
        for op in block {
            let flag = |prefix: bool| if prefix { " --prefix" } else { "" };
            text += &match op {
                TxnOp::Put { key, value } => format!("put {} {}\n", quote(key.as_bytes()), quote(value)),
                TxnOp::Delete { key, prefix } => format!("del {}{}\n", quote(key.as_bytes()), flag(*prefix)),
                TxnOp::Get { key, prefix } => format!("get {}{}\n", quote(key.as_bytes()), flag(*prefix)),
            };
        }
    }
    text + "\n"
}

fn parse_compare(line: &str) -> Result<Compare, String> {
    const FORM: &str = r#"a compare is target("key") op "value", target one of c, create, m, mod, ver, version, val, value, lease, op one of = != < >"#;
    let (target, rest) = line.split_once('(').ok_or(FORM)?;
    let target = match target.trim() {
        "c" | "create" => CmpTarget::Create,
        "m" | "mod" => CmpTarget::Mod,
        "ver" | "version" => CmpTarget::Version,
        "val" | "value" => CmpTarget::Value,
        "lease" => CmpTarget::Lease,
        other => return Err(format!("unknown target {other:?}; {FORM}")),
    };
    let (key, rest) = quoted(rest.trim_start()).map_err(|e| format!("the key: {e}; {FORM}"))?;
    let rest = rest.trim_start().strip_prefix(')').ok_or(FORM)?.trim_start();
    let (op, rest) = rest.split_once(char::is_whitespace).ok_or(FORM)?;
    let op = match op {
        "=" => CmpOp::Equal,
        "!=" => CmpOp::NotEqual,
        "<" => CmpOp::Less,
        ">" => CmpOp::Greater,
        other => return Err(format!("unknown operator {other:?}; {FORM}")),
    };
    let (value, rest) = quoted(rest.trim_start()).map_err(|e| format!("the value: {e}; {FORM}"))?;
    if !rest.trim().is_empty() {
        return Err(format!("{:?} after the value; {FORM}", rest.trim()));
    }
    let key = utf8(key)?;
    let value = match target {
        CmpTarget::Value => CmpValue::Bytes(value),
        _ => {
            let text = String::from_utf8_lossy(&value).into_owned();
            CmpValue::Number(
                text.parse().map_err(|_| format!("{text:?} is not a number (the {target:?} compare takes one)"))?,
            )
        }
    };
    Ok(Compare { key, target, op, value })
}

fn parse_op(line: &str) -> Result<TxnOp, String> {
    const FORM: &str = "an op is put KEY VALUE, del KEY [--prefix] or get KEY [--prefix]";
    let words = words(line)?;
    let mut plain = Vec::new();
    let mut prefix = false;
    for (w, quoted) in &words {
        match w.as_slice() {
            // A quoted word is a key or a value, whatever it spells (a value `--`).
            _ if *quoted => plain.push(w.clone()),
            b"--prefix" => prefix = true,
            w if w.starts_with(b"--") => {
                // Debug-quoted: the word may hold an escaped newline, and the error is one line.
                return Err(format!("{:?} is not supported here; {FORM}", String::from_utf8_lossy(w)));
            }
            _ => plain.push(w.clone()),
        }
    }
    match (plain.first().map(Vec::as_slice), plain.len()) {
        (Some(b"put"), 3) if !prefix => Ok(TxnOp::Put { key: utf8(plain[1].clone())?, value: plain[2].clone() }),
        (Some(b"del" | b"delete"), 2) => Ok(TxnOp::Delete { key: utf8(plain[1].clone())?, prefix }),
        (Some(b"get"), 2) => Ok(TxnOp::Get { key: utf8(plain[1].clone())?, prefix }),
        _ => Err(FORM.to_string()),
    }
}

/// Refuses a write to conch's own keys, and an empty key.
fn check_op(op: &TxnOp) -> Result<(), String> {
    let (key, prefix, write) = match op {
        TxnOp::Put { key, .. } => (key, false, true),
        TxnOp::Delete { key, prefix } => (key, *prefix, true),
        TxnOp::Get { key, prefix } => (key, *prefix, false),
    };
    if key.is_empty() && !prefix {
        return Err("the key is empty".to_string());
    }
    let reserved = key.starts_with(RESERVED_PREFIX) || (prefix && RESERVED_PREFIX.starts_with(key.as_str()));
    if write && reserved {
        return Err(format!("{key:?} would write under {RESERVED_PREFIX}, conch's own keys; write elsewhere"));
    }
    Ok(())
}

fn utf8(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|_| "a key must be UTF-8".to_string())
}

/// Splits an op line into words as etcdctl's `argify`: `"double quoted"` (Go escapes),
/// `'single quoted'` (raw), or bare; each with whether it was quoted.
fn words(line: &str) -> Result<Vec<(Vec<u8>, bool)>, String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let is_quoted = matches!(rest.as_bytes()[0], b'"' | b'`' | b'\'');
        let (word, after) = match rest.as_bytes()[0] {
            b'"' | b'`' => quoted(rest)?,
            b'\'' => {
                let end = rest[1..].find('\'').ok_or("an unclosed ' quote")?;
                (rest.as_bytes()[1..end + 1].to_vec(), &rest[end + 2..])
            }
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (rest.as_bytes()[..end].to_vec(), &rest[end..])
            }
        };
        out.push((word, is_quoted));
        rest = after.trim_start();
    }
    Ok(out)
}

/// One Go-quoted string at the start of `text` (`"..."` with escapes, or `` `raw` ``),
/// and what follows it.
fn quoted(text: &str) -> Result<(Vec<u8>, &str), String> {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(b'`') => {
            let end = text[1..].find('`').ok_or("an unclosed ` quote")?;
            Ok((bytes[1..end + 1].to_vec(), &text[end + 2..]))
        }
        Some(b'"') => {
            let mut out = Vec::new();
            let mut chars = text.char_indices().skip(1);
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => return Ok((out, &text[i + 1..])),
                    '\\' => {
                        let (_, e) = chars.next().ok_or("an unclosed \" quote")?;
                        match e {
                            'n' => out.push(b'\n'),
                            't' => out.push(b'\t'),
                            'r' => out.push(b'\r'),
                            '\\' | '"' | '\'' => out.push(e as u8),
                            'x' => {
                                let hex: String = (0..2).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                                let b = u8::from_str_radix(&hex, 16)
                                    .map_err(|_| format!("bad escape {:?}", format!("\\x{hex}")))?;
                                out.push(b);
                            }
                            other => return Err(format!("unknown escape {:?}", format!("\\{other}"))),
                        }
                    }
                    c => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            Err("an unclosed \" quote".to_string())
        }
        _ => Err("expected a quoted string".to_string()),
    }
}

/// Quotes bytes so [`quoted`] reads them back.
fn quote(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s += "\\\"",
                '\\' => s += "\\\\",
                '\n' => s += "\\n",
                '\t' => s += "\\t",
                '\r' => s += "\\r",
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        s += &format!("\\x{b:02x}");
                    }
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s += &format!("\\x{b:02x}");
        }
    }
    s + "\""
}

#[cfg(test)]
#[path = "fenced_tests.rs"]
mod tests;
