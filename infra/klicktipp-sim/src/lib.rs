//! A local simulator of KlickTipp's Management and Listbuilding APIs
//! (`reference/klicktipp-api.md`, section 8), with fault knobs and an
//! introspection API under `/_sim/`.
//!
//! The account starts with the 16 global fields plus `SimConfig::custom_fields`,
//! the predefined double opt-in process (id 1, empty name) and a single opt-in
//! process (id 2), one smart tag per process (ids 900001, 900002; never set on
//! contacts) and one per listbuilding key, no manual tags and no contacts.
//! Manual tag ids start at 101, contact ids at 1001.
//!
//! Admin API (no auth; never logged, counted or rate limited):
//! `GET /_sim` (HTML overview), `GET /_sim/contacts`, `GET /_sim/tags`,
//! `GET /_sim/requests`, `GET /_sim/calls`, `GET|PUT|PATCH /_sim/knobs`,
//! `POST /_sim/reset`, `POST /_sim/confirm {"email"}` (confirm a double opt-in).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = klicktipp_sim::start(klicktipp_sim::SimConfig::default(), "127.0.0.1:0").await?;
//! println!("KlickTipp at {}", sim.url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod api;
pub mod auth;
mod body;
mod clock;
mod config;
mod contacts;
pub mod contract;
mod faults;
mod fields;
mod knobs;
mod messages;
mod render;
mod reply;
mod routes;
mod server;
mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{
    DEFAULT_DOUBLE_OPTIN_LISTID, FieldSpec, FieldType, ListbuildingKey, PartnerAccount, SINGLE_OPTIN_LISTID, SimConfig,
    global_fields,
};
pub use knobs::{DuplicateTagPolicy, Knobs, Language, SubscriberIndexShape, UnknownTagAnswer};
pub use state::{ContactView, LoggedRequest};

use server::Shared;
use state::SimState;

/// How long `shutdown` waits for in-flight requests (e.g. a delayed fault) before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running simulator. Cheap to clone; all clones see the same account.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    url: String,
    server: Arc<Mutex<Option<ServerTask>>>,
}

/// Short alias.
pub type Sim = Simulator;

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("url", &self.url).finish_non_exhaustive()
    }
}

struct ServerTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Binds `addr` (e.g. `127.0.0.1:0`) and serves in the background.
pub async fn start(config: SimConfig, addr: &str) -> anyhow::Result<Simulator> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("klicktipp-sim cannot listen on {addr}"))?;
    let local = listener.local_addr().context("klicktipp-sim listener has no local address")?;
    let knobs = config.knobs.clone();
    let shared = Arc::new(Shared::new(SimState::new(config, knobs, auth::new_session_name())));
    let app = server::router(Arc::clone(&shared));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(error) = serving.await {
            tracing::error!(%error, "klicktipp-sim server stopped");
        }
    });
    Ok(Simulator {
        shared,
        url: format!("http://{local}"),
        server: Arc::new(Mutex::new(Some(ServerTask { stop, task }))),
    })
}

impl Simulator {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Replaces all knobs and re-seeds the fault RNG.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.lock().set_knobs(knobs);
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    /// Sorted by email.
    pub fn contacts(&self) -> Vec<ContactView> {
        self.shared.lock().contact_views()
    }

    /// Manual tags, id -> name.
    pub fn tags(&self) -> BTreeMap<u64, String> {
        self.shared.lock().tag_names()
    }

    /// Smart tags (per opt-in process and per listbuilding key), id -> name.
    pub fn smart_tags(&self) -> BTreeMap<u64, String> {
        self.shared.lock().smart_tags.clone()
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// Every API call (429s, 404s and 405s included), by endpoint label.
    pub fn calls_by_endpoint(&self) -> BTreeMap<String, u64> {
        self.shared.lock().calls_by_endpoint.clone()
    }

    pub fn total_calls(&self) -> u64 {
        self.shared.lock().log.len() as u64
    }

    pub fn count_status(&self, status: u16) -> u64 {
        self.shared.lock().calls_by_status.get(&status).copied().unwrap_or(0)
    }

    /// Contacts, tags, sessions, the log and counters back to the start
    /// config. Knobs keep their current values (the RNG is re-seeded).
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// The contact confirms its double opt-in (status becomes `Subscribed`).
    /// False when no pending contact has this email.
    pub fn confirm_optin(&self, email: &str) -> bool {
        self.shared.lock().confirm_optin(email, clock::unix_now())
    }

    /// The name of the session cookie (`SSESS…`) this account uses.
    pub fn session_name(&self) -> String {
        self.shared.lock().session_name.clone()
    }

    /// Stops accepting connections and waits briefly for in-flight requests.
    pub async fn shutdown(self) {
        let server = self.server.lock().expect("simulator server lock poisoned").take();
        let Some(ServerTask { stop, mut task }) = server else {
            return;
        };
        let _ = stop.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}
