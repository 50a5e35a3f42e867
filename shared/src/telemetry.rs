//! Structured JSON logs on stderr, the same shape for both Lambdas and the CLI.

use tracing_subscriber::EnvFilter;

/// The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging config) or `RUST_LOG`,
/// else `default_level`. A second call (tests) keeps the first subscriber.
pub fn init_json_logging(default_level: &str) {
    let configured = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let filter = configured
        .ok()
        .and_then(|level| EnvFilter::try_new(level.to_ascii_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
