//! The state dir: the node id and the routing-table cache.
//!
//! Both files are written to a temporary name and renamed over the old one,
//! so a crash mid-write leaves the previous file intact. A missing file is
//! normal on a first start; a corrupt one is reported and ignored, never
//! fatal. Writes run off the actor threads (see the supervisor).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dhtd_protocol::bencode::{Encoder, Limits, Value};
use dhtd_protocol::compact::{encode_node, CompactNodes};
use dhtd_protocol::{NodeId, NodeInfo};

/// The node id file: 40 hex digits.
pub const NODE_ID_FILE: &str = "node_id";
/// The routing-table cache: a bencoded dictionary.
pub const TABLE_FILE: &str = "routing_table.dat";

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file's content is not what we write.
    #[error("{path}: corrupt ({why})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: &'static str,
    },
}

/// Writes `bytes` to `path` atomically: a temporary file, then a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io_err = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err)?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The saved node id, if there is one.
pub fn load_node_id(dir: &Path) -> Result<Option<NodeId>, StateError> {
    let path = dir.join(NODE_ID_FILE);
    let Some(bytes) = read(&path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    text.trim()
        .parse::<NodeId>()
        .map(Some)
        .map_err(|_| StateError::Corrupt {
            path,
            why: "not 40 hex digits",
        })
}

/// Saves the node id.
pub fn save_node_id(dir: &Path, id: &NodeId) -> Result<(), StateError> {
    write_atomically(&dir.join(NODE_ID_FILE), format!("{id}\n").as_bytes())
}

/// The table cache's bytes.
pub fn encode_table(own_id: &NodeId, nodes: &[NodeInfo]) -> Vec<u8> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for n in nodes {
        encode_node(n, if n.addr.is_ipv4() { &mut v4 } else { &mut v6 });
    }
    let mut out = Vec::new();
    Encoder::new(&mut out)
        .begin_dict()
        .bytes(b"id")
        .bytes(own_id.as_bytes())
        .bytes(b"nodes")
        .bytes(&v4)
        .bytes(b"nodes6")
        .bytes(&v6)
        .end();
    out
}

/// Decodes a table cache: the id it was saved under and its nodes.
pub fn decode_table(bytes: &[u8]) -> Result<(NodeId, Vec<NodeInfo>), &'static str> {
    let value = Value::decode(bytes, Limits::KRPC).map_err(|_| "not bencode")?;
    let id = match value.get(b"id") {
        Some(Value::Bytes(b)) => NodeId::from_slice(b).ok_or("bad id")?,
        _ => return Err("no id"),
    };
    let mut nodes = Vec::new();
    for (key, family_v4) in [(&b"nodes"[..], true), (&b"nodes6"[..], false)] {
        match value.get(key) {
            Some(Value::Bytes(b)) => {
                let compact = if family_v4 {
                    CompactNodes::v4(b)
                } else {
                    CompactNodes::v6(b)
                };
                nodes.extend(compact.map_err(|_| "bad node list length")?.iter());
            }
            None => {}
            Some(_) => return Err("node list is not a string"),
        }
    }
    Ok((id, nodes))
}

/// The cached table, if there is a usable one.
pub fn load_table(dir: &Path) -> Result<Option<(NodeId, Vec<NodeInfo>)>, StateError> {
    let path = dir.join(TABLE_FILE);
    let Some(bytes) = read(&path)? else {
        return Ok(None);
    };
    decode_table(&bytes)
        .map(Some)
        .map_err(|why| StateError::Corrupt { path, why })
}

/// Saves the table cache.
pub fn save_table(dir: &Path, own_id: &NodeId, nodes: &[NodeInfo]) -> Result<(), StateError> {
    write_atomically(&dir.join(TABLE_FILE), &encode_table(own_id, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dhtd-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn table_round_trips_both_families() {
        let nodes = vec![
            NodeInfo {
                id: NodeId([1; 20]),
                addr: "127.0.0.1:6881".parse().unwrap(),
            },
            NodeInfo {
                id: NodeId([2; 20]),
                addr: "[::1]:6882".parse().unwrap(),
            },
        ];
        let dir = temp_dir("roundtrip");
        save_table(&dir, &NodeId([9; 20]), &nodes).unwrap();
        assert_eq!(load_table(&dir).unwrap(), Some((NodeId([9; 20]), nodes)));
        assert!(
            !dir.join("routing_table.tmp").exists(),
            "the temporary file was renamed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_are_normal_and_corrupt_ones_are_reported() {
        let dir = temp_dir("corrupt");
        assert!(load_table(&dir).unwrap().is_none());
        assert!(load_node_id(&dir).unwrap().is_none());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(TABLE_FILE), b"d2:id3:abce").unwrap();
        fs::write(dir.join(NODE_ID_FILE), b"xyz").unwrap();
        let table_err = load_table(&dir).unwrap_err().to_string();
        assert!(
            table_err.contains("routing_table.dat") && table_err.contains("bad id"),
            "{table_err}"
        );
        let id_err = load_node_id(&dir).unwrap_err().to_string();
        assert!(
            id_err.contains("node_id") && id_err.contains("hex"),
            "{id_err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn node_id_round_trips() {
        let dir = temp_dir("id");
        let id = NodeId([0xab; 20]);
        save_node_id(&dir, &id).unwrap();
        assert_eq!(load_node_id(&dir).unwrap(), Some(id));
        fs::remove_dir_all(&dir).unwrap();
    }
}
