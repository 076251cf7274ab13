//! The state dir: the node id and the routing-table cache.
//!
//! Both files are written to a temporary name, synced and renamed over the
//! old one, so a crash or a full disk mid-write leaves the previous file
//! intact; a write that fails removes its temporary file, and one left by a
//! crash is removed at the next start ([`remove_stale_temp_files`]). A
//! missing file is normal on a first start; a corrupt one is reported and
//! ignored, never fatal. Writes run off the actor threads (see the
//! supervisor).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use dhtd_protocol::bencode::{Encoder, Limits, Value};
use dhtd_protocol::compact::{encode_node, CompactNodes};
use dhtd_protocol::NodeId;

use crate::NodeInfo;

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

/// The temporary name `path` is written under before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    path.with_extension("tmp")
}

/// Writes `bytes` to `path` atomically: a temporary file, synced, then a
/// rename. On failure the old file is untouched and no temporary file is
/// left behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io_err = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir).map_err(io_err)?;
    }
    let tmp = temp_path(path);
    let written = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // A full disk leaves a 0-byte file; a failed rename a complete one.
        // Neither is of use, and the next write truncates it anyway.
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    // The rename survives a power cut once the directory is synced. Best
    // effort: some file systems refuse to sync a directory, and the file
    // itself is complete either way.
    if let Some(dir) = dir {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Removes the temporary files that a crash mid-write left in `dir`;
/// returns those removed. One that cannot be removed is harmless: the next
/// write truncates it.
pub fn remove_stale_temp_files(dir: &Path) -> Vec<PathBuf> {
    [NODE_ID_FILE, TABLE_FILE]
        .into_iter()
        .map(|name| temp_path(&dir.join(name)))
        .filter(|tmp| fs::remove_file(tmp).is_ok())
        .collect()
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

/// A routing table as a node saves it: the id it ran under and its
/// nodes. [`Dht::export_table`](crate::Dht::export_table) gives one,
/// [`DhtBuilder::import_table`](crate::DhtBuilder::import_table) starts a
/// node from one, and its bytes are the state dir's [`TABLE_FILE`], for an
/// application that keeps its own state (libtorrent's `dht_state`).
///
/// ```
/// use dhtd::persist::SavedTable;
/// use dhtd::{NodeId, NodeInfo};
///
/// let table = SavedTable {
///     id: NodeId([1; 20]),
///     nodes: vec![NodeInfo { id: NodeId([2; 20]), addr: "127.0.0.2:6881".parse().unwrap() }],
/// };
/// assert_eq!(SavedTable::from_bytes(&table.to_bytes()).unwrap(), table);
/// assert!(SavedTable::from_bytes(b"junk").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedTable {
    /// The node id the table was built around.
    pub id: NodeId,
    /// Its nodes, IPv4 and IPv6.
    pub nodes: Vec<NodeInfo>,
}

/// Why bytes are not a saved table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a saved routing table: {0}")]
pub struct TableFormatError(&'static str);

impl SavedTable {
    /// Its bytes: a bencoded dictionary of `id`, `nodes` and `nodes6`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in &self.nodes {
            let family = if n.addr.is_ipv4() { &mut v4 } else { &mut v6 };
            encode_node(&n.to_core(), family);
        }
        let mut out = Vec::new();
        Encoder::new(&mut out)
            .begin_dict()
            .bytes(b"id")
            .bytes(self.id.as_bytes())
            .bytes(b"nodes")
            .bytes(&v4)
            .bytes(b"nodes6")
            .bytes(&v6)
            .end();
        out
    }

    /// Reads what [`SavedTable::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<SavedTable, TableFormatError> {
        let value =
            Value::decode(bytes, Limits::KRPC).map_err(|_| TableFormatError("not bencode"))?;
        let id = match value.get(b"id") {
            Some(Value::Bytes(b)) => NodeId::from_slice(b).ok_or(TableFormatError("bad id"))?,
            _ => return Err(TableFormatError("no id")),
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
                    let compact = compact.map_err(|_| TableFormatError("bad node list length"))?;
                    nodes.extend(compact.iter().map(NodeInfo::from_core));
                }
                None => {}
                Some(_) => return Err(TableFormatError("node list is not a string")),
            }
        }
        Ok(SavedTable { id, nodes })
    }
}

/// The cached table, if there is a usable one.
pub fn load_table(dir: &Path) -> Result<Option<SavedTable>, StateError> {
    let path = dir.join(TABLE_FILE);
    let Some(bytes) = read(&path)? else {
        return Ok(None);
    };
    SavedTable::from_bytes(&bytes)
        .map(Some)
        .map_err(|TableFormatError(why)| StateError::Corrupt { path, why })
}

/// Saves the table cache.
pub fn save_table(dir: &Path, table: &SavedTable) -> Result<(), StateError> {
    write_atomically(&dir.join(TABLE_FILE), &table.to_bytes())
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
        let table = SavedTable {
            id: NodeId([9; 20]),
            nodes,
        };
        save_table(&dir, &table).unwrap();
        assert_eq!(load_table(&dir).unwrap(), Some(table));
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
    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = temp_dir("full");
        let id = NodeId([0xcd; 20]);
        save_node_id(&dir, &id).unwrap();
        let tmp = temp_path(&dir.join(NODE_ID_FILE));
        // A full disk, even for root: the temporary name leads to
        // /dev/full, where every write fails with ENOSPC.
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let err = save_node_id(&dir, &NodeId([1; 20]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("node_id") && err.contains("space"), "{err}");
        assert!(
            fs::symlink_metadata(&tmp).is_err(),
            "the temporary file was removed"
        );
        assert_eq!(
            load_node_id(&dir).unwrap(),
            Some(id),
            "the old id is intact"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        let dir = temp_dir("rename");
        // A directory where the table goes: the rename fails, for root too.
        fs::create_dir_all(dir.join(TABLE_FILE).join("x")).unwrap();
        let empty = SavedTable {
            id: NodeId([9; 20]),
            nodes: Vec::new(),
        };
        assert!(save_table(&dir, &empty).is_err());
        assert!(!temp_path(&dir.join(TABLE_FILE)).exists());
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "nothing else written"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temporary_files_are_removed_and_nothing_else() {
        let dir = temp_dir("stale");
        fs::create_dir_all(&dir).unwrap();
        for name in [
            "node_id.tmp",
            "routing_table.tmp",
            "other.tmp",
            NODE_ID_FILE,
        ] {
            fs::write(dir.join(name), b"").unwrap();
        }
        let mut removed = remove_stale_temp_files(&dir);
        removed.sort();
        assert_eq!(
            removed,
            vec![dir.join("node_id.tmp"), dir.join("routing_table.tmp")]
        );
        let mut left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec![NODE_ID_FILE, "other.tmp"]);
        assert!(remove_stale_temp_files(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
