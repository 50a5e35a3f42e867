//! A local simulator of the platform APIs the bridge pulls from (DESIGN 11):
//! WebinarJam and EverWebinar (`/webinarjam/...`, `/everwebinar/...`: `POST`
//! form-encoded with `api_key`; `/webinars`, `/webinar`, `/registrants` with its
//! paginator; 20 calls per second per key, then 429 "Too many requests" without
//! `Retry-After`) and Zoom (`POST /oauth/token`, the participants report,
//! absentees and registrants with `next_page_token` pages, the webinar list
//! and past instances; 429 with
//! `Retry-After`; 401 code 124 for an expired or invalid token).
//!
//! It serves a [`PlatformData`] document (the `platform.json` format), has fault
//! knobs ([`Knobs`]) and an introspection API under `/_sim/` (see `admin.rs`),
//! including a per-second call log.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let data = platform_sim::PlatformData::load(std::path::Path::new("platform.json"))?;
//! let sim = platform_sim::PlatformSim::start(platform_sim::SimConfig::with_data(data)).await?;
//! println!("EverWebinar API at {}", sim.everwebinar_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod data;
mod jam;
mod knobs;
mod reply;
mod server;
mod state;
mod zoom;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use data::{
    JamAccount, JamProduct, JamRegistrant, JamSchedule, JamWebinar, PlatformData, ZoomAccount, ZoomParticipant,
    ZoomRegistrant, ZoomWebinar,
};
pub use knobs::Knobs;
pub use state::{CallRecord, CallStats, DEFAULT_API_KEY, SecondStats, SimConfig, ZoomCredentials};
pub use zoom::decode_uuid as decode_zoom_uuid;

use server::Shared;
use state::SimState;

/// How long `shutdown` waits for in-flight requests (e.g. a stall) before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running platform simulator. Cheap to clone; all clones see the same state.
#[derive(Clone)]
pub struct PlatformSim {
    shared: Arc<Shared>,
    url: String,
    server: Arc<Mutex<Option<ServerTask>>>,
}

impl std::fmt::Debug for PlatformSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformSim").field("url", &self.url).finish_non_exhaustive()
    }
}

struct ServerTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PlatformSim {
    /// Serves on a free loopback port in the background.
    pub async fn start(config: SimConfig) -> anyhow::Result<PlatformSim> {
        Self::start_on(config, "127.0.0.1:0").await
    }

    /// Binds `addr` (e.g. `127.0.0.1:8091`) and serves in the background.
    pub async fn start_on(config: SimConfig, addr: &str) -> anyhow::Result<PlatformSim> {
        config.knobs.validate().map_err(|e| anyhow::anyhow!("platform-sim knobs: {e}"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("platform-sim cannot listen on {addr}"))?;
        let local = listener.local_addr().context("platform-sim listener has no local address")?;
        let url = format!("http://{local}");
        let shared = Arc::new(Shared::new(SimState::new(config, url.clone())));
        let app = server::router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                tracing::error!(%error, "platform-sim server stopped");
            }
        });
        Ok(PlatformSim { shared, url, server: Arc::new(Mutex::new(Some(ServerTask { stop, task }))) })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the base for
    /// `WEBINARJAM_API_BASE_URL` (products under `/webinarjam`, `/everwebinar`)
    /// and `ZOOM_API_BASE_URL` (`/oauth/token`, `/v2/...`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `{url}/webinarjam`.
    pub fn webinarjam_url(&self) -> String {
        format!("{}/{}", self.url, JamProduct::WebinarJam.path())
    }

    /// `{url}/everwebinar`.
    pub fn everwebinar_url(&self) -> String {
        format!("{}/{}", self.url, JamProduct::EverWebinar.path())
    }

    /// The first configured WebinarJam/EverWebinar API key.
    pub fn api_key(&self) -> String {
        self.shared.lock().config.api_keys.first().cloned().unwrap_or_default()
    }

    pub fn zoom_credentials(&self) -> ZoomCredentials {
        self.shared.lock().config.zoom.clone()
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    /// Replaces all knobs and re-seeds the fault RNG.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.lock().set_knobs(knobs);
    }

    /// Changes some knobs: `sim.update_knobs(|k| k.fail_next_calls = 3)`.
    pub fn update_knobs(&self, change: impl FnOnce(&mut Knobs)) {
        let mut state = self.shared.lock();
        let mut knobs = state.knobs.clone();
        change(&mut knobs);
        state.set_knobs(knobs);
    }

    pub fn data(&self) -> PlatformData {
        self.shared.lock().config.data.clone()
    }

    /// Replaces what the APIs answer from now on.
    pub fn set_data(&self, data: PlatformData) {
        self.shared.lock().config.data = data;
    }

    /// Every API call so far (admin calls excluded), in arrival order.
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.shared.lock().log.clone()
    }

    /// Counters and the per-second call log.
    pub fn stats(&self) -> CallStats {
        CallStats::from_log(&self.shared.lock().log)
    }

    /// Every Zoom token issued so far expires now; returns how many.
    pub fn expire_tokens(&self) -> usize {
        self.shared.lock().expire_tokens(Instant::now())
    }

    /// Log, counters, rate windows and tokens cleared; data and knobs kept.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// Stops accepting connections and waits briefly for in-flight requests.
    pub async fn shutdown(self) {
        let server = self.server.lock().map(|mut server| server.take()).unwrap_or_default();
        let Some(ServerTask { stop, mut task }) = server else {
            return;
        };
        let _ = stop.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}
