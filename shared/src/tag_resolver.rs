//! Tag names -> KlickTipp tag ids: an in-process cache over the shared [`TagDirectory`], one
//! `GET /tag` per process, and single-writer creation of missing tags.

use crate::klicktipp::{KlickTippClient, KlickTippError};
use crate::ports::{Clock, PortError, TagClaim, TagDirectory};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a creation claim protects a tag name from a second creator.
const CREATION_LEASE: Duration = Duration::from_secs(30);
/// While another process creates a tag, look again this often, this many times, before
/// handing the event back to the queue.
const CREATION_POLL: Duration = Duration::from_millis(100);
const CREATION_POLLS: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum TagResolveError {
    #[error(transparent)]
    KlickTipp(#[from] KlickTippError),
    #[error(transparent)]
    Port(#[from] PortError),
    /// Another consumer is creating this tag right now.
    #[error("another consumer is creating this tag")]
    CreationInProgress,
}

pub struct TagResolver {
    directory: Arc<dyn TagDirectory>,
    klicktipp: KlickTippClient,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, u64>>,
    /// The account's tags as `GET /tag` listed them: fetched once per process, dropped when a
    /// tag turns out to be gone.
    account_tags: tokio::sync::Mutex<Option<Arc<HashMap<String, u64>>>>,
    /// Creations in this process run one at a time, so concurrent contacts needing the same new
    /// tag wait for it instead of bouncing off their own process's claim. Creations are rare.
    creating: tokio::sync::Mutex<()>,
}

impl TagResolver {
    pub fn new(directory: Arc<dyn TagDirectory>, klicktipp: KlickTippClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            directory,
            klicktipp,
            clock,
            cache: Mutex::default(),
            account_tags: tokio::sync::Mutex::new(None),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// Known without any I/O (planning hint only).
    pub fn is_cached(&self, name: &str) -> bool {
        self.cache.lock().map(|cache| cache.contains_key(name)).unwrap_or(false)
    }

    fn remember(&self, name: &str, id: u64) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name.to_owned(), id);
        }
    }

    /// Makes tags known by name without asking anyone: the existing tags states are mapped to in
    /// the per-webinar settings (their ids come from the settings, not from `GET /tag`).
    pub fn pin_known(&self, tags: &BTreeMap<String, u64>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.extend(tags.iter().map(|(name, id)| (name.clone(), *id)));
        }
    }

    /// The id of an existing tag, without ever creating one (for untagging).
    pub async fn existing(&self, name: &str) -> Result<Option<u64>, TagResolveError> {
        if let Some(id) = self.cache.lock().ok().and_then(|cache| cache.get(name).copied()) {
            return Ok(Some(id));
        }
        if let Some(id) = self.directory.lookup(name).await? {
            self.remember(name, id);
            return Ok(Some(id));
        }
        let account = self.account_tags().await?;
        if let Some(id) = account.get(name).copied() {
            self.directory.record_existing(&BTreeMap::from([(name.to_owned(), id)])).await?;
            self.remember(name, id);
            return Ok(Some(id));
        }
        Ok(None)
    }

    /// The id of the tag, creating it in KlickTipp if the account does not have it.
    /// Returns whether this call created it.
    pub async fn resolve(&self, name: &str) -> Result<(u64, bool), TagResolveError> {
        if let Some(id) = self.existing(name).await? {
            return Ok((id, false));
        }
        let _one_creation_at_a_time = self.creating.lock().await;
        for _ in 0..CREATION_POLLS {
            // Another task of this process may have created it while we waited for the lock.
            if let Some(id) = self.existing(name).await? {
                return Ok((id, false));
            }
            match self.directory.claim_creation(name, self.clock.now(), CREATION_LEASE).await? {
                TagClaim::Exists(id) => {
                    self.remember(name, id);
                    return Ok((id, false));
                }
                TagClaim::HeldByOther => tokio::time::sleep(CREATION_POLL).await,
                TagClaim::TakenOver => {
                    // The earlier creator may have created it before it failed: ask KlickTipp
                    // afresh (one `GET /tag`, only on this rare path) before creating.
                    *self.account_tags.lock().await = None;
                    if let Some(id) = self.account_tags().await?.get(name).copied() {
                        self.directory.record_created(name, id).await?;
                        self.remember(name, id);
                        return Ok((id, false));
                    }
                    return self.create(name).await;
                }
                TagClaim::Claimed => return self.create(name).await,
            }
        }
        Err(TagResolveError::CreationInProgress)
    }

    async fn create(&self, name: &str) -> Result<(u64, bool), TagResolveError> {
        let id = self.klicktipp.create_tag(name, Some("Managed by webinar-bridge")).await?;
        self.directory.record_created(name, id).await?;
        self.remember(name, id);
        tracing::info!(tag_id = id, "created tag");
        Ok((id, true))
    }

    /// Drops a tag KlickTipp no longer has (deleted by the user), so it is created again.
    pub async fn forget(&self, name: &str) -> Result<(), TagResolveError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(name);
        }
        self.directory.forget(name).await?;
        *self.account_tags.lock().await = None;
        Ok(())
    }

    async fn account_tags(&self) -> Result<Arc<HashMap<String, u64>>, TagResolveError> {
        let mut guard = self.account_tags.lock().await;
        if let Some(listed) = guard.as_ref() {
            return Ok(Arc::clone(listed));
        }
        // Duplicate names can exist in an account; the oldest (lowest id) always wins.
        let mut by_name: HashMap<String, u64> = HashMap::new();
        for (id, name) in self.klicktipp.list_tags().await? {
            by_name.entry(name).and_modify(|existing| *existing = (*existing).min(id)).or_insert(id);
        }
        let listed = Arc::new(by_name);
        *guard = Some(Arc::clone(&listed));
        Ok(listed)
    }
}
