//! The embedded metadata database (redb): every durable record berth keeps, in one file.
//!
//! # Schema (version 1)
//!
//! File: `<root_dir>/meta.redb`. Every table maps a UTF-8 key to a JSON value; values are the
//! serde form of the record types named below. Writes are ACID transactions (redb commits are
//! fsynced), so a crash leaves either the old or the new state, never a mix.
//!
//! | table          | key                                        | value                          |
//! |----------------|--------------------------------------------|--------------------------------|
//! | `meta`         | `"schema_version"`                          | `1`                            |
//! | `images`       | image id (`sha256:` config digest)          | `image::record::ImageRecord`   |
//! | `image_names`  | `registry/repo:tag` or `registry/repo@sha256:..` | image id (JSON string)    |
//! | `snapshots`    | chain id (`sha256:..`)                      | `snapshot::SnapshotRecord`     |
//! | `counters`     | `"snapshot"`                                | next snapshot directory number |
//! | `sandboxes`    | pod sandbox id (64 hex)                     | `runtime::records::SandboxRecord` |
//! | `containers`   | container id (64 hex)                       | `runtime::records::ContainerRecord` |
//! | `intents`      | pod sandbox or container id (64 hex)        | `runtime::intents::Intent`     |
//! | `unflushed`    | `snapshot/<chain id>` or `blob/<digest>`    | `image::flush::Unflushed`      |
//!
//! An `intents` row is an operation on a pod or container that has begun and not finished
//! (creating, stopping, removing): written before the operation's first side effect, removed
//! in the transaction that writes its outcome. A restarted berthd finishes or undoes each one
//! (`runtime::recovery`). The table is new in version 1's lifetime: an older berth ignores it.
//! An `unflushed` row is a pulled blob or snapshot not yet flushed to disk, with the boot it was
//! written in (`image::flush`); also new in version 1's lifetime.
//!
//! A name points at exactly one image; an image lists its names too (`repo_tags`,
//! `repo_digests`), and both sides change in one transaction.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Classify, Kind};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// How long [`Store::open`] waits for another holder of the database's lock to let go.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The tables of the schema above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Meta,
    Images,
    ImageNames,
    Snapshots,
    Counters,
    Sandboxes,
    Containers,
    Intents,
    Unflushed,
}

impl Table {
    const ALL: [Table; 9] = [
        Table::Meta,
        Table::Images,
        Table::ImageNames,
        Table::Snapshots,
        Table::Counters,
        Table::Sandboxes,
        Table::Containers,
        Table::Intents,
        Table::Unflushed,
    ];

    fn def(self) -> Raw {
        TableDefinition::new(match self {
            Table::Meta => "meta",
            Table::Images => "images",
            Table::ImageNames => "image_names",
            Table::Snapshots => "snapshots",
            Table::Counters => "counters",
            Table::Sandboxes => "sandboxes",
            Table::Containers => "containers",
            Table::Intents => "intents",
            Table::Unflushed => "unflushed",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata database {path}: {source}")]
    Open { path: String, source: redb::Error },
    #[error(
        "metadata database: schema version {found} is newer than this berth ({SCHEMA_VERSION})"
    )]
    Schema { found: u64 },
    #[error("metadata database: {0}")]
    Db(#[from] redb::Error),
    #[error("metadata database: record {table:?}/{key} is missing")]
    Missing { table: Table, key: String },
    #[error("metadata database: record {table:?}/{key}: {source}")]
    Decode {
        table: Table,
        key: String,
        source: serde_json::Error,
    },
}

impl Classify for StoreError {
    fn kind(&self) -> Kind {
        Kind::Internal
    }
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

/// The open database. Cheap operations; callers on async threads may call it directly.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens or creates the database at `path` and checks its schema version.
    ///
    /// The file's lock can outlive a killed berthd by a moment (a child it was starting still
    /// held a copy of its descriptors): a locked database is retried for [`LOCK_WAIT`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match Database::create(path) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => break other,
            }
        };
        let db = db.map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        let store = Store { db };
        store.write(|w| {
            for table in Table::ALL {
                w.txn.open_table(table.def()).map_err(db_err)?;
            }
            match w.get::<u64>(Table::Meta, "schema_version")? {
                Some(found) if found > SCHEMA_VERSION => Err(StoreError::Schema { found }),
                Some(_) => Ok(()),
                None => w.put(Table::Meta, "schema_version", &SCHEMA_VERSION),
            }
        })?;
        Ok(store)
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        f(&Reader { txn })
    }

    /// Runs `f` in a write transaction, committed (durably) only if `f` succeeds.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_with(Durability::Immediate, f)
    }

    /// Like [`Store::write`], but the commit is not flushed: readers see it at once, and it
    /// reaches the disk with the next durable commit (any [`Store::write`] or [`Store::persist`]),
    /// or is lost in a crash before that. Only for records whose loss a restart repairs.
    pub fn write_volatile<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_with(Durability::None, f)
    }

    /// Like [`Store::write_volatile`], for a transaction that also does work of another kind
    /// (with its own error type) while it holds the database's write lock: nothing is committed
    /// if `f` fails.
    pub fn write_volatile_as<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write_with(Durability::None, f)
    }

    /// Makes every earlier [`Store::write_volatile`] commit durable.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(()))
    }

    fn write_with<T, E: From<StoreError>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut Writer) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(durability).map_err(db_err)?;
        let mut writer = Writer { txn };
        let value = f(&mut writer)?;
        writer.txn.commit().map_err(db_err)?;
        Ok(value)
    }
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        table,
        key: key.to_string(),
        source,
    })
}

type Raw = TableDefinition<'static, &'static str, &'static [u8]>;

fn get_from<T: DeserializeOwned>(
    table: Table,
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let value = t.get(key).map_err(db_err)?;
    value.map(|v| decode(table, key, v.value())).transpose()
}

fn list_from<T: DeserializeOwned>(
    table: Table,
    t: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut out = Vec::new();
    for item in t.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        let key = k.value().to_string();
        out.push((key.clone(), decode(table, &key, v.value())?));
    }
    Ok(out)
}

/// A read transaction.
pub struct Reader {
    txn: redb::ReadTransaction,
}

impl Reader {
    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        get_from(
            table,
            &self.txn.open_table(table.def()).map_err(db_err)?,
            key,
        )
    }

    /// Every (key, record) of a table, in key order.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        list_from(table, &self.txn.open_table(table.def()).map_err(db_err)?)
    }
}

/// A write transaction.
pub struct Writer {
    txn: redb::WriteTransaction,
}

impl Writer {
    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        get_from(
            table,
            &self.txn.open_table(table.def()).map_err(db_err)?,
            key,
        )
    }

    pub fn put<T: Serialize + ?Sized>(
        &mut self,
        table: Table,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).expect("records serialise to JSON");
        let mut t = self.txn.open_table(table.def()).map_err(db_err)?;
        t.insert(key, bytes.as_slice()).map_err(db_err)?;
        Ok(())
    }

    /// Removes a key; returns whether it existed.
    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool, StoreError> {
        let mut t = self.txn.open_table(table.def()).map_err(db_err)?;
        let existed = t.remove(key).map_err(db_err)?.is_some();
        Ok(existed)
    }

    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        list_from(table, &self.txn.open_table(table.def()).map_err(db_err)?)
    }

    /// Returns the counter's current value and advances it.
    pub fn next_counter(&mut self, name: &str) -> Result<u64, StoreError> {
        let value = self.get::<u64>(Table::Counters, name)?.unwrap_or(1);
        self.put(Table::Counters, name, &(value + 1))?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_failed_writes_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = Store::open(&path).unwrap();
            store.write(|w| w.put(Table::ImageNames, "a", "x")).unwrap();
            let failed: Result<(), StoreError> = store.write(|w| {
                w.put(Table::ImageNames, "b", "y")?;
                Err(StoreError::Schema { found: 99 })
            });
            assert!(failed.is_err());
            assert_eq!(store.write(|w| w.next_counter("snapshot")).unwrap(), 1);
            assert_eq!(store.write(|w| w.next_counter("snapshot")).unwrap(), 2);
        }
        let store = Store::open(&path).unwrap();
        let names: Vec<(String, String)> = store.read(|r| r.list(Table::ImageNames)).unwrap();
        assert_eq!(names, vec![("a".to_string(), "x".to_string())]);
        assert_eq!(store.write(|w| w.next_counter("snapshot")).unwrap(), 3);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        Store::open(&path)
            .unwrap()
            .write(|w| w.put(Table::Meta, "schema_version", &(SCHEMA_VERSION + 1)))
            .unwrap();
        assert!(matches!(Store::open(&path), Err(StoreError::Schema { .. })));
    }
}
