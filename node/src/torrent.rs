//! The `nodes` key of a .torrent file (BEP 5, "Torrent File Extensions"):
//! a list of `[host, port]` pairs a trackerless torrent carries for bootstrap.

use std::path::Path;

use dhtd_protocol::bencode::{Limits, Value};

/// Why a .torrent's nodes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a bencoded dictionary.
    #[error("not a .torrent file (bencode error at byte {0})")]
    NotBencode(usize),
}

/// The `host:port` strings of the `nodes` list in a .torrent's bytes.
/// Entries that are not a `[string, integer]` pair are skipped; a torrent
/// without `nodes` gives an empty list.
pub fn nodes_from_torrent_bytes(bytes: &[u8]) -> Result<Vec<String>, TorrentError> {
    let value =
        Value::decode(bytes, Limits::FILE).map_err(|e| TorrentError::NotBencode(e.offset))?;
    let Some(Value::List(entries)) = value.get(b"nodes") else {
        return Ok(Vec::new());
    };
    Ok(entries
        .iter()
        .filter_map(|entry| match entry {
            Value::List(pair) => match pair.as_slice() {
                [Value::Bytes(host), Value::Int(port)] => {
                    let host = std::str::from_utf8(host).ok()?;
                    let port = u16::try_from(*port).ok().filter(|p| *p != 0)?;
                    // IPv6 literals need brackets in host:port form.
                    Some(if host.contains(':') {
                        format!("[{host}]:{port}")
                    } else {
                        format!("{host}:{port}")
                    })
                }
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// The `host:port` strings of the `nodes` list in a .torrent file.
pub fn nodes_from_torrent_file(path: &Path) -> Result<Vec<String>, TorrentError> {
    nodes_from_torrent_bytes(&std::fs::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_port_pairs_and_skips_bad_entries() {
        let torrent = b"d4:infod4:name1:xe5:nodesll9:127.0.0.2i6881eel3:::1i7eeli1ei2eel1:ai0eeee";
        assert_eq!(
            nodes_from_torrent_bytes(torrent).unwrap(),
            ["127.0.0.2:6881", "[::1]:7"]
        );
        assert!(nodes_from_torrent_bytes(b"d4:infod4:name1:xee")
            .unwrap()
            .is_empty());
        assert!(matches!(
            nodes_from_torrent_bytes(b"not bencode"),
            Err(TorrentError::NotBencode(_))
        ));
    }
}
