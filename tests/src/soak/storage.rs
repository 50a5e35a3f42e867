//! The shared storage of a soak run, on SQLite or on SQS + DynamoDB (moto).
//!
//! Every consumer instance gets its own handles, as separate processes would: on SQLite its own
//! connection to the one file (so the file's locking is part of the test), on AWS its own SDK
//! clients for the same queue and tables.

use super::config::BackendKind;
use crate::moto::{Moto, MotoQueue};
use crate::port_suite::InspectableQueue;
use std::path::PathBuf;
use std::sync::Arc;
use webinar_bridge::adapters::dynamodb::{DynamoContactStore, DynamoEventLog, DynamoTagDirectory};
use webinar_bridge::adapters::memory::{DeadLetter, QueueSettings};
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteEventLog, SqliteQueue, SqliteTagDirectory};
use webinar_bridge::ports::{ContactStore, EventLog, EventQueue, PortResult, TagDirectory};

/// One instance's view of the shared storage.
pub struct Ports {
    pub queue: Arc<dyn EventQueue>,
    pub log: Arc<dyn EventLog>,
    pub contacts: Arc<dyn ContactStore>,
    pub tags: Arc<dyn TagDirectory>,
}

pub enum Storage {
    Sqlite { path: PathBuf, settings: QueueSettings, inspector: SqliteQueue, _dir: ScratchDir },
    // Boxed: the SDK configuration is large, and only one storage exists per run.
    Aws { moto: Box<Moto>, queue: MotoQueue, events_table: String, contacts_table: String },
}

impl Storage {
    pub async fn open(kind: BackendKind, settings: QueueSettings) -> anyhow::Result<Storage> {
        match kind {
            BackendKind::Sqlite => {
                let dir = ScratchDir::new("webinar-bridge-soak")?;
                let path = dir.0.join("bridge.db");
                let inspector = SqliteQueue::new(SqliteDb::open(&path)?, settings);
                Ok(Storage::Sqlite { path, settings, inspector, _dir: dir })
            }
            BackendKind::Aws => {
                let moto = Moto::start().await;
                // The visibility timeout and the redrive policy are set on the created queue.
                let queue = moto.create_queue(settings).await;
                let events_table = moto.create_events_table().await;
                let contacts_table = moto.create_contacts_table().await;
                Ok(Storage::Aws { moto: Box::new(moto), queue, events_table, contacts_table })
            }
        }
    }

    /// Fresh handles for one instance (ingest, a consumer, or the verifier).
    pub fn ports(&self) -> anyhow::Result<Ports> {
        Ok(match self {
            Storage::Sqlite { path, settings, .. } => {
                let db = SqliteDb::open(path)?;
                Ports {
                    queue: Arc::new(SqliteQueue::new(db.clone(), *settings)),
                    log: Arc::new(SqliteEventLog::new(db.clone())),
                    contacts: Arc::new(SqliteContactStore::new(db.clone())),
                    tags: Arc::new(SqliteTagDirectory::new(db)),
                }
            }
            Storage::Aws { moto, queue, events_table, contacts_table } => {
                let dynamodb = moto.dynamodb();
                Ports {
                    queue: Arc::new(queue.clone()),
                    log: Arc::new(DynamoEventLog::new(dynamodb.clone(), events_table)),
                    contacts: Arc::new(DynamoContactStore::new(dynamodb.clone(), contacts_table)),
                    tags: Arc::new(DynamoTagDirectory::new(dynamodb, contacts_table)),
                }
            }
        })
    }

    /// Messages neither acknowledged nor dead-lettered (in flight and delayed included).
    pub async fn pending(&self) -> PortResult<usize> {
        match self {
            Storage::Sqlite { inspector, .. } => inspector.pending().await,
            Storage::Aws { queue, .. } => queue.depth().await,
        }
    }

    /// The dead-letter store's contents, and how many messages it holds (the AWS peek can see
    /// fewer messages than the queue counts).
    pub async fn dead_letters(&self) -> PortResult<(Vec<DeadLetter>, usize)> {
        match self {
            Storage::Sqlite { inspector, .. } => {
                let dead = InspectableQueue::dead_letters(inspector).await?;
                let count = dead.len();
                Ok((dead, count))
            }
            Storage::Aws { queue, .. } => {
                let dead = queue.dead_letters().await?;
                let count = queue.dlq_depth().await?.max(dead.len());
                Ok((dead, count))
            }
        }
    }
}

/// A private directory under the system temp dir, removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(prefix: &str) -> std::io::Result<Self> {
        let name = format!("{prefix}-{}-{:08x}", std::process::id(), rand::random::<u32>());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
