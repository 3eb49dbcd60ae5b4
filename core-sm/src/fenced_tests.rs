//! Tables for the txn parser, the guard from the environment and the answer's exit code.
use super::*;
use crate::etcd::EtcdRequest;
use proptest::prelude::*;

fn put_op(k: &str, v: &str) -> TxnOp {
    TxnOp::Put { key: k.into(), value: v.as_bytes().to_vec() }
}

#[test]
fn parses_etcdctl_examples() {
    // The example of etcdctl's README, and its forms of every target.
    let text = "mod(\"key1\") > \"0\"\n\nput key1 \"overwrote-key1\"\n\nput key1 \"created-key1\"\nput key2 \"some extra key\"\n\n";
    let t = parse_txn(text).unwrap();
    assert_eq!(
        t.compares,
        vec![Compare { key: "key1".into(), target: CmpTarget::Mod, op: CmpOp::Greater, value: CmpValue::Number(0) }]
    );
    assert_eq!(t.success, vec![put_op("key1", "overwrote-key1")]);
    assert_eq!(t.failure, vec![put_op("key1", "created-key1"), put_op("key2", "some extra key")]);
    let table: &[(&str, CmpTarget, CmpOp, CmpValue)] = &[
        (r#"c("k") = "0""#, CmpTarget::Create, CmpOp::Equal, CmpValue::Number(0)),
        (r#"create("k") != "12""#, CmpTarget::Create, CmpOp::NotEqual, CmpValue::Number(12)),
        (r#"m("k") < "3""#, CmpTarget::Mod, CmpOp::Less, CmpValue::Number(3)),
        (r#"ver("k") = "1""#, CmpTarget::Version, CmpOp::Equal, CmpValue::Number(1)),
        (r#"version("k") > "1""#, CmpTarget::Version, CmpOp::Greater, CmpValue::Number(1)),
        (r#"val("k") = "a b""#, CmpTarget::Value, CmpOp::Equal, CmpValue::Bytes(b"a b".to_vec())),
        (r#"value("k") = "a\nb""#, CmpTarget::Value, CmpOp::Equal, CmpValue::Bytes(b"a\nb".to_vec())),
        ("value(\"k\") = `raw\\n`", CmpTarget::Value, CmpOp::Equal, CmpValue::Bytes(b"raw\\n".to_vec())),
        (r#"lease("k") = "7587""#, CmpTarget::Lease, CmpOp::Equal, CmpValue::Number(7587)),
        (r#"  val( "k" )   =   "x"  "#, CmpTarget::Value, CmpOp::Equal, CmpValue::Bytes(b"x".to_vec())),
    ];
    for (line, target, op, value) in table {
        let t = parse_txn(&format!("{line}\n\n\n")).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(t.compares, vec![Compare { key: "k".into(), target: *target, op: *op, value: value.clone() }]);
    }
}

#[test]
fn parses_ops_as_etcdctl_argify() {
    let table: &[(&str, TxnOp)] = &[
        ("put k v", put_op("k", "v")),
        ("put   k   \"x y\"", put_op("k", "x y")),
        ("put k 'single \\n raw'", put_op("k", "single \\n raw")),
        ("put \"a key\" \"tab\\there\"", put_op("a key", "tab\there")),
        ("put k \"\\x41\"", put_op("k", "A")),
        ("del k", TxnOp::Delete { key: "k".into(), prefix: false }),
        ("del --prefix app/", TxnOp::Delete { key: "app/".into(), prefix: true }),
        ("get k", TxnOp::Get { key: "k".into(), prefix: false }),
        ("get app/ --prefix", TxnOp::Get { key: "app/".into(), prefix: true }),
    ];
    for (line, op) in table {
        let t = parse_txn(&format!("\n{line}\n\n")).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(t.success, vec![op.clone()], "{line}");
        assert!(t.compares.is_empty() && t.failure.is_empty());
    }
}

#[test]
fn end_of_input_closes_blocks_and_blank_input_is_empty() {
    assert_eq!(parse_txn("").unwrap(), TxnSpec::default());
    assert_eq!(parse_txn("\n\nput k v").unwrap().failure, vec![put_op("k", "v")]);
    assert_eq!(parse_txn("c(\"k\") = \"0\"").unwrap().compares.len(), 1);
    // Windows line ends and trailing blank lines are fine.
    assert_eq!(parse_txn("\r\nput k v\r\n\r\n\r\n\r\n").unwrap().success, vec![put_op("k", "v")]);
}

#[test]
fn refuses_bad_input_with_the_line_and_the_form() {
    let table: &[(&str, &str)] = &[
        ("bogus\n\n\n", "line 1 (\"bogus\")"),
        ("c(k3) > 0\n\n\n", "the key: expected a quoted string"),
        ("mod(\"k\") >= \"0\"\n\n\n", "unknown operator \">=\""),
        ("frob(\"k\") = \"0\"\n\n\n", "unknown target \"frob\""),
        ("mod(\"k\") = \"x\"\n\n\n", "\"x\" is not a number"),
        ("mod(\"k\") = \"1\" extra\n\n\n", "\"extra\" after the value"),
        ("val(\"k\") = \"open\n\n\n", "unclosed \" quote"),
        ("\nput\n\n", "line 2 (\"put\"): an op is put KEY VALUE"),
        ("\nfrob k\n\n", "an op is put"),
        ("\nput k v extra\n\n", "an op is put"),
        ("\nput k v --lease=1\n\n", "\"--lease=1\" is not supported here"),
        ("\nput k \"bad\\q\"\n\n", "unknown escape \"\\\\q\""),
        ("\nput k \"\\x\r\"\n\n", "bad escape"),
        // Found by the fuzzer: an escaped newline in a flag-like word made a two-line error
        // (a quoted word is data now, so this one is a fourth word: still one line).
        ("\nput k v \"--x\\ny\"\n\n", "an op is put"),
        ("\nput /conch/v1/elect/x/1 v\n\n", "conch's own keys"),
        ("\ndel --prefix /\n\n", "conch's own keys"),
        ("\ndel --prefix \"\"\n\n", "conch's own keys"),
        ("\n\ndel /conch/v1/x\n", "conch's own keys"),
        ("\nput \"\" v\n\n", "the key is empty"),
        ("\n\n\nput k v\n", "line 4 (\"put k v\") comes after the failure block"),
    ];
    for (text, want) in table {
        let e = parse_txn(text).expect_err(text);
        assert!(e.starts_with("txn: ") && e.contains(want), "{text:?}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    // Reading conch's keys is fine.
    assert!(parse_txn("\nget /conch/v1/elect/x --prefix\n\n").is_ok());
    let many = format!("\n{}\n", "put k v\n".repeat(TXN_OPS_MAX + 1));
    assert!(parse_txn(&many).unwrap_err().contains("at most 127"));
}

#[test]
fn put_and_del_refuse_conch_keys() {
    assert_eq!(put("app/k", b"v").unwrap().success, vec![put_op("app/k", "v")]);
    assert!(put("/conch/v1/x", b"v").unwrap_err().starts_with("put: "));
    assert!(put("", b"v").unwrap_err().contains("empty"));
    assert!(del("/conch", true).unwrap_err().starts_with("del: "));
    assert_eq!(del("app/", true).unwrap().success, vec![TxnOp::Delete { key: "app/".into(), prefix: true }]);
}

#[test]
fn the_guard_comes_from_the_environment() {
    let key = "/conch/v1/elect/db/694d1";
    assert_eq!(guard_from_env(Some(key), Some("42")), Ok(Guard { key: key.into(), rev: Revision(42) }));
    let table: &[(Option<&str>, Option<&str>, &str)] = &[
        (None, Some("42"), "CONCH_KEY is not set"),
        (Some(""), Some("42"), "CONCH_KEY is not set"),
        (Some(key), None, "CONCH_REV is not set"),
        (Some(key), Some("x"), "CONCH_REV \"x\" is not a revision"),
        (Some(key), Some("0"), "CONCH_REV \"0\" is not a revision"),
        (Some("/tls/key.pem"), Some("42"), "is not a conch holder key"),
    ];
    for (k, r, want) in table {
        let e = guard_from_env(*k, *r).unwrap_err();
        assert!(e.contains(want), "{k:?} {r:?}: {e}");
    }
}

#[test]
fn the_request_carries_the_guard_unless_sabotaged() {
    let g = Guard { key: "/conch/v1/elect/db/1".into(), rev: Revision(9) };
    let t = put("k", b"v").unwrap();
    assert_eq!(
        request(g.clone(), t.clone(), Sabotage::None),
        EtcdRequest::FencedTxn { guard: Some(g.clone()), txn: t.clone() }
    );
    assert_eq!(request(g, t.clone(), Sabotage::UnguardedWrite), EtcdRequest::FencedTxn { guard: None, txn: t });
}

#[test]
fn exit_codes_and_lines() {
    let a = |held, succeeded, results| TxnAnswer { held, succeeded, rev: Revision(5), results };
    assert_eq!(a(true, true, vec![]).exit_code(), ExitCode::OK);
    assert_eq!(a(true, false, vec![]).exit_code(), ExitCode::VACANT);
    assert_eq!(a(false, false, vec![]).exit_code(), ExitCode::LOST);
    let results = vec![OpResult::Put, OpResult::Got(vec![("k1".into(), b"v1".to_vec())]), OpResult::Deleted(1)];
    assert_eq!(a(true, true, results).lines(), vec!["SUCCESS", "", "OK", "", "k1", "v1", "", "1"]);
    assert_eq!(a(true, false, vec![OpResult::Put]).lines(), vec!["FAILURE", "", "OK"]);
}

fn arb_op() -> impl Strategy<Value = TxnOp> {
    let key = "[a-z][a-z0-9/ \"'\\\\\n\t]{0,8}";
    let value = proptest::collection::vec(any::<u8>(), 0..12);
    prop_oneof![
        (key, value).prop_map(|(key, value)| TxnOp::Put { key, value }),
        (key, any::<bool>()).prop_map(|(key, prefix)| TxnOp::Delete { key, prefix }),
        ("[a-z/]{0,6}", any::<bool>()).prop_map(|(key, prefix)| TxnOp::Get { key, prefix }),
    ]
    .prop_filter("conch's keys and empty keys are refused", |op| check_op(op).is_ok())
}

fn arb_compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        Just(CmpTarget::Create),
        Just(CmpTarget::Mod),
        Just(CmpTarget::Version),
        Just(CmpTarget::Value),
        Just(CmpTarget::Lease)
    ];
    let op = prop_oneof![Just(CmpOp::Equal), Just(CmpOp::NotEqual), Just(CmpOp::Less), Just(CmpOp::Greater)];
    (".{1,8}", target, op, any::<i64>(), proptest::collection::vec(any::<u8>(), 0..10)).prop_map(
        |(key, target, op, n, bytes)| {
            let value = if target == CmpTarget::Value { CmpValue::Bytes(bytes) } else { CmpValue::Number(n) };
            Compare { key, target, op, value }
        },
    )
}

/// A quoted value or key that spells a flag is data (found by render_parses_back: a put of
/// the value `--` was refused); a bare one is still a flag.
#[test]
fn a_quoted_word_is_never_a_flag() {
    let t = parse_txn("\nput \"a\" \"--\"\n\ndel '--prefix'\n").unwrap();
    assert_eq!(t.success, vec![TxnOp::Put { key: "a".into(), value: b"--".to_vec() }]);
    assert_eq!(t.failure, vec![TxnOp::Delete { key: "--prefix".into(), prefix: false }]);
    assert!(parse_txn("\nput a --\n\n").is_err());
    let t = parse_txn("\ndel a --prefix\n\n").unwrap();
    assert_eq!(t.success, vec![TxnOp::Delete { key: "a".into(), prefix: true }]);
}

proptest! {
    #[test]
    fn render_parses_back(
        compares in proptest::collection::vec(arb_compare(), 0..4),
        success in proptest::collection::vec(arb_op(), 0..4),
        failure in proptest::collection::vec(arb_op(), 0..4),
    ) {
        let t = TxnSpec { compares, success, failure };
        prop_assert_eq!(parse_txn(&render(&t)), Ok(t));
    }

    #[test]
    fn parsing_never_panics_and_errors_are_one_line(text in ".{0,200}") {
        if let Err(e) = parse_txn(&text) {
            prop_assert!(!e.contains('\n'));
        }
    }
}
