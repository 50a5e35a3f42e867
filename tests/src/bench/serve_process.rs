//! `webinar-bridge serve` as a child process, pointed at a simulator in this process (so its
//! memory is ingest + consumer only, without the simulator it would start on its own).

use crate::proc_status::peak_rss_kib;
use anyhow::{Context as _, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use webinar_bridge_tests::generator::Log;
use webinar_bridge_tests::harness::{FIELD_MAP, GENERIC_SECRET, SIM_PASSWORD, SIM_USERNAME};

const STARTUP_LIMIT: Duration = Duration::from_secs(20);
const BANNER_PREFIX: &str = "webinar-bridge is listening on ";

/// The `webinar-bridge` to measure: `--serve-binary`, else the one beside this binary (same
/// profile), else the workspace's release build, else its debug build.
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("webinar-bridge")));
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target");
    [beside, Some(target.join("release/webinar-bridge")), Some(target.join("debug/webinar-bridge"))]
        .into_iter()
        .flatten()
        .find(|path| path.is_file())
        .context("no webinar-bridge binary: run `cargo build --release --workspace` (infra/bench.sh does) or pass --serve-binary")
}

/// The environment: the log's secrets, the harness field map, the simulator as the account.
pub fn environment(log: &Log, sim_url: &str, db: &Path, cap: u32) -> Vec<(String, String)> {
    [
        ("BRIDGE_WEBINARJAM_SECRET", log.secrets.webinarjam.as_str()),
        ("BRIDGE_ZOOM_SECRET_TOKEN", log.secrets.zoom.as_str()),
        ("BRIDGE_GENERIC_SECRET", GENERIC_SECRET),
        ("BRIDGE_FIELD_MAP", FIELD_MAP),
        ("KLICKTIPP_BASE_URL", sim_url),
        ("KLICKTIPP_USERNAME", SIM_USERNAME),
        ("KLICKTIPP_PASSWORD", SIM_PASSWORD),
        ("BRIDGE_DB", &db.to_string_lossy()),
        ("BRIDGE_KLICKTIPP_RPS", &cap.to_string()),
        // Production's level: every request is logged (to a file here).
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

pub struct Serve {
    child: Child,
    pub base_url: String,
}

impl Serve {
    /// Starts serve on a free port, its log in `log_file`, and waits until `/health` answers.
    pub async fn start(binary: &Path, env: &[(String, String)], log_file: &Path) -> anyhow::Result<Serve> {
        let stderr =
            std::fs::File::create(log_file).with_context(|| format!("cannot create {}", log_file.display()))?;
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("serve's stdout is not piped")?;
        let (lines, banner) = mpsc::channel();
        // Keeps reading so serve never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut serve = Serve { child, base_url: String::new() };
        serve.base_url = serve.wait_for_banner(&banner).await?;
        serve.wait_until_healthy().await?;
        Ok(serve)
    }

    async fn wait_for_banner(&mut self, lines: &mpsc::Receiver<String>) -> anyhow::Result<String> {
        let started = Instant::now();
        while started.elapsed() < STARTUP_LIMIT {
            while let Ok(line) = lines.try_recv() {
                if let Some(url) = line.strip_prefix(BANNER_PREFIX) {
                    return Ok(url.trim().to_owned());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("serve exited with {status} before listening");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("serve printed no listen address within {STARTUP_LIMIT:?}")
    }

    async fn wait_until_healthy(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < STARTUP_LIMIT {
            if let Ok(response) = client.get(format!("{}/health", self.base_url)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("serve never answered /health")
    }

    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        peak_rss_kib(self.child.id())
    }

    /// SIGTERM (serve finishes its batch and exits), then a kill if it takes too long.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().context("cannot run kill")?;
        let started = Instant::now();
        while started.elapsed() < STARTUP_LIMIT {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
