//! The consumer child (`bench --role consumer`): drains a SQLite queue the parent filled into
//! the parent's simulator at the cap, then prints what it did and its own peak RSS as one JSON
//! line. A process of its own, so the memory figure is the consumer's alone.

use crate::args::ConsumerRole;
use crate::proc_status::own_peak_rss_kib;
use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteEventLog, SqliteQueue, SqliteTagDirectory};
use webinar_bridge::consume::{Consumer, ConsumerOptions};
use webinar_bridge::domain::{FieldMap, Settings};
use webinar_bridge::klicktipp::{KlickTippAuth, KlickTippClient, KlickTippConfig};
use webinar_bridge::ports::{EventQueue, SystemClock};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker::{self, BatchSummary};
use webinar_bridge_tests::harness::{FIELD_MAP, SIM_PASSWORD, SIM_USERNAME};

/// A drain that takes longer than this is stuck (retries that never succeed).
const DRAIN_LIMIT: Duration = Duration::from_secs(30 * 60);

/// What the child reports to the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainReport {
    pub drain_seconds: f64,
    pub batches: u64,
    pub received: usize,
    pub applied: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub retried: usize,
    pub peak_rss_kib: u64,
}

pub fn run(role: &ConsumerRole) -> anyhow::Result<()> {
    // Multi-threaded like `serve`'s runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(drain(role))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn consumer(db: &SqliteDb, role: &ConsumerRole) -> anyhow::Result<Consumer> {
    let auth = KlickTippAuth::Session { username: SIM_USERNAME.to_owned(), password: Secret::new(SIM_PASSWORD) };
    let mut config = KlickTippConfig::new(role.sim_url.clone(), auth);
    config.rate_per_second = role.rate;
    let client = KlickTippClient::new(config).context("cannot build the KlickTipp client")?;
    let clock = Arc::new(SystemClock);
    let tags = TagResolver::new(Arc::new(SqliteTagDirectory::new(db.clone())), client.clone(), clock.clone());
    let settings = Settings { field_map: FieldMap::parse_json(FIELD_MAP)?, ..Settings::default() };
    Ok(Consumer::new(
        Arc::new(SqliteEventLog::new(db.clone())),
        Arc::new(SqliteContactStore::new(db.clone())),
        tags,
        client,
        settings,
        ConsumerOptions::default(),
        clock,
    ))
}

async fn drain(role: &ConsumerRole) -> anyhow::Result<DrainReport> {
    let db = SqliteDb::open(&role.db).with_context(|| format!("cannot open {}", role.db.display()))?;
    let queue = SqliteQueue::new(db.clone(), QueueSettings::default());
    let consumer = consumer(&db, role)?;
    let started = Instant::now();
    let (mut total, mut batches) = (BatchSummary::default(), 0);
    loop {
        let batch = worker::process_one_batch(&queue as &dyn EventQueue, &consumer).await?;
        if batch.received > 0 {
            batches += 1;
            total.add(&batch);
        } else if queue.pending().await? == 0 {
            break;
        } else {
            // Only delayed retries are left.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if started.elapsed() > DRAIN_LIMIT {
            bail!("the queue did not drain within {DRAIN_LIMIT:?}: {total:?}");
        }
    }
    Ok(DrainReport {
        drain_seconds: started.elapsed().as_secs_f64(),
        batches,
        received: total.received,
        applied: total.applied,
        duplicates: total.duplicates,
        rejected: total.rejected,
        retried: total.retried,
        peak_rss_kib: own_peak_rss_kib()?,
    })
}
