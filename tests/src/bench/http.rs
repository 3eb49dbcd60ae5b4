//! etcd over plain HTTP on loopback, without a gRPC client: its Prometheus `/metrics` (on
//! `--listen-metrics-urls`, so scraping adds nothing to the gRPC counters it reads) and the
//! JSON gateway on the client URL (`/v3/kv/range`, `/v3/lease/revoke`, `/v3/kv/put`).
//! HTTP/1.0 requests, so the answer is close-delimited (never chunked).
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

/// One request; returns the body of a 200 answer.
fn request(url: &str, method: &str, path: &str, body: &str) -> Result<String, String> {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).map_err(|e| format!("{path}: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("{path}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{path}: no HTTP answer"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{path}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

/// etcd's Prometheus metrics, as (name, labels, value).
pub fn metrics(url: &str) -> Result<Vec<(String, String, f64)>, String> {
    let body = request(url, "GET", "/metrics", "")?;
    Ok(body.lines().filter(|l| !l.starts_with('#')).filter_map(parse_sample).collect())
}

fn parse_sample(line: &str) -> Option<(String, String, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, labels)) => Some((name.to_string(), labels.trim_end_matches('}').to_string(), value)),
        None => Some((series.to_string(), String::new(), value)),
    }
}

/// The sum of a metric over the series whose labels contain every `want` (`k="v"`).
pub fn sum(samples: &[(String, String, f64)], name: &str, want: &[&str]) -> f64 {
    samples.iter().filter(|(n, l, _)| n == name && want.iter().all(|w| l.contains(w))).map(|(_, _, v)| v).sum()
}

/// Calls the gateway.
pub fn gateway(endpoint: &str, path: &str, body: &Value) -> Result<Value, String> {
    let text = request(endpoint, "POST", path, &body.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// Keys under `prefix`, in create-revision order, with their leases (decimal).
pub fn keys(endpoint: &str, prefix: &str) -> Result<Vec<(String, i64)>, String> {
    let body = json!({
        "key": b64(prefix.as_bytes()),
        "range_end": b64(&prefix_end(prefix)),
        "keys_only": true,
        "sort_target": "CREATE",
        "sort_order": "ASCEND",
    });
    let answer = gateway(endpoint, "/v3/kv/range", &body)?;
    let mut out = Vec::new();
    for kv in answer["kvs"].as_array().into_iter().flatten() {
        let key = kv["key"].as_str().and_then(unb64).map(|k| String::from_utf8_lossy(&k).to_string());
        let lease = kv["lease"].as_str().and_then(|l| l.parse().ok()).unwrap_or(0);
        if let Some(key) = key {
            out.push((key, lease));
        }
    }
    Ok(out)
}

/// How many keys are under `prefix` (`count_only`: a few bytes each way).
pub fn count(endpoint: &str, prefix: &str) -> Result<u64, String> {
    let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix)), "count_only": true});
    let answer = gateway(endpoint, "/v3/kv/range", &body)?;
    Ok(answer["count"].as_str().and_then(|c| c.parse().ok()).unwrap_or(0))
}

/// Revokes a lease (decimal id).
pub fn revoke(endpoint: &str, lease: i64) -> Result<(), String> {
    gateway(endpoint, "/v3/lease/revoke", &json!({"ID": lease.to_string()})).map(|_| ())
}

/// Puts a key.
pub fn put(endpoint: &str, key: &str, value: &[u8]) -> Result<(), String> {
    gateway(endpoint, "/v3/kv/put", &json!({"key": b64(key.as_bytes()), "value": b64(value)})).map(|_| ())
}

/// Gets one key's value.
pub fn get(endpoint: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    let answer = gateway(endpoint, "/v3/kv/range", &json!({"key": b64(key.as_bytes())}))?;
    Ok(answer["kvs"][0]["value"].as_str().and_then(unb64))
}

fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for text in ["", "a", "ab", "abc", "/conch/v1/sema/x/1/"] {
            assert_eq!(unb64(&b64(text.as_bytes())).as_deref(), Some(text.as_bytes()));
        }
        assert_eq!(b64(b"ab"), "YWI=");
    }

    #[test]
    fn samples_parse() {
        let s = parse_sample("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\"} 12").unwrap();
        assert_eq!((s.0.as_str(), s.2), ("grpc_server_handled_total", 12.0));
        assert!(s.1.contains("grpc_method=\"Range\""));
    }
}
