//! `dhtd put` and `dhtd get`: BEP 44 items from the command line.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use dhtd::{Dht, NodeId, SigningKey, MAX_VALUE_LEN};
use serde_json::json;

use crate::settings::{self, Defaults, NodeArgs};
use crate::Failure;

/// How long a put or get may wait for bootstrap and its lookup.
const JOB_TIMEOUT: Duration = Duration::from_secs(90);

fn start(args: &NodeArgs) -> Result<Dht, Failure> {
    let settings = settings::resolve(args, Defaults::TOOL)?;
    Ok(Dht::builder(settings.config).start()?)
}

fn unhex<const N: usize>(what: &str, text: &str) -> Result<[u8; N], Failure> {
    let bad = || Failure::Usage(format!("{what}: `{text}` is not {} hex digits", 2 * N));
    if text.len() != 2 * N {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value: from a file, or standard input for `-` or none.
fn read_value(file: Option<&Path>) -> Result<Vec<u8>, Failure> {
    let mut value = Vec::new();
    match file {
        Some(p) if p != Path::new("-") => {
            value =
                std::fs::read(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut value)
                .map_err(|e| Failure::Usage(format!("standard input: {e}")))?;
        }
    }
    // A byte string of n bytes is `n:` and the bytes, bencoded.
    let bencoded = value.len() + value.len().to_string().len() + 1;
    if bencoded > MAX_VALUE_LEN {
        return Err(Failure::Usage(format!(
            "the value is {} bytes; BEP 44 items hold at most {} bytes bencoded ({} of value)",
            value.len(),
            MAX_VALUE_LEN,
            MAX_VALUE_LEN - 4
        )));
    }
    Ok(value)
}

/// The signing key of `--secret` (64 hex digits of seed).
fn key_of(secret: &str) -> Result<SigningKey, Failure> {
    Ok(SigningKey::from_seed(unhex::<32>("--secret", secret)?))
}

pub(crate) struct PutArgs<'a> {
    pub file: Option<&'a Path>,
    pub secret: Option<&'a str>,
    pub salt: &'a str,
    pub seq: Option<i64>,
    pub cas: Option<i64>,
    pub json: bool,
}

pub(crate) async fn put(p: PutArgs<'_>, args: &NodeArgs) -> Result<(), Failure> {
    let value = read_value(p.file)?;
    let key = p.secret.map(key_of).transpose()?;
    if key.is_none() && (p.seq.is_some() || p.cas.is_some() || !p.salt.is_empty()) {
        return Err(Failure::Usage(
            "--seq, --cas and --salt are for mutable items: give --secret too".into(),
        ));
    }
    let dht = start(args)?;
    let job = async {
        match &key {
            None => dht.put_immutable(&value).await,
            Some(key) => {
                let seq = p.seq.unwrap_or(1);
                dht.put_mutable(key, &value, seq, p.salt.as_bytes(), p.cas)
                    .await
            }
        }
    };
    let report = tokio::time::timeout(JOB_TIMEOUT, job)
        .await
        .map_err(|_| Failure::Failed("no DHT nodes available: bootstrap did not complete".into()))?
        .map_err(|e| Failure::Failed(e.to_string()));
    dht.shutdown().await;
    let report = report?;
    if p.json {
        let mut out = json!({
            "target": report.target.to_string(),
            "tried": report.tried,
            "accepted": report.accepted,
        });
        if let Some(key) = &key {
            out["public_key"] = json!(hex(&key.public_key()));
        }
        println!("{out}");
    } else {
        println!("{}", report.target);
        if let Some(key) = &key {
            eprintln!("public key {}", hex(&key.public_key()));
        }
        eprintln!("stored by {} of {} nodes", report.accepted, report.tried);
    }
    if report.accepted == 0 {
        return Err(Failure::Failed("put failed: no node stored it".into()));
    }
    Ok(())
}

pub(crate) async fn get(
    target: &str,
    salt: &str,
    newer_than: Option<i64>,
    json: bool,
    args: &NodeArgs,
) -> Result<(), Failure> {
    // 64 hex digits: a public key (mutable); 40: a target (immutable).
    let (key, target_id) = match target.len() {
        64 => {
            let key = unhex::<32>("the key", target)?;
            let id = dhtd_protocol::item::mutable_target(&key, salt.as_bytes());
            (Some(key), id)
        }
        _ => (None, NodeId(unhex::<20>("the target", target)?)),
    };
    let dht = start(args)?;
    let job = async {
        match &key {
            Some(key) => dht.get_mutable(key, salt.as_bytes(), newer_than).await,
            None => {
                let mut stream = dht.get_item(target_id, b"", None);
                let mut best = None;
                while let Some(event) = stream.next_event().await {
                    if let dhtd::LookupEvent::Item(item) = event {
                        best = Some(item);
                    }
                }
                Ok(best)
            }
        }
    };
    let found = tokio::time::timeout(JOB_TIMEOUT, job)
        .await
        .map_err(|_| Failure::Failed("no DHT nodes available: bootstrap did not complete".into()))?
        .map_err(|e| Failure::Failed(e.to_string()));
    dht.shutdown().await;
    let Some(item) = found? else {
        return Err(Failure::Failed(format!(
            "not found: no node holds {target_id}"
        )));
    };
    if json {
        let mut out = json!({
            "target": item.target.to_string(),
            "value": String::from_utf8_lossy(item.value()),
            "value_hex": hex(item.value()),
        });
        if let Some(m) = &item.mutable {
            out["seq"] = json!(m.seq);
            out["public_key"] = json!(hex(&m.public_key));
        }
        println!("{out}");
    } else {
        use std::io::Write;
        let _ = std::io::stdout().write_all(item.value());
        if let Some(m) = &item.mutable {
            eprintln!("\nseq {}", m.seq);
        }
    }
    Ok(())
}
