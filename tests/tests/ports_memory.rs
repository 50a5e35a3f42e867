//! The port conformance suite against the in-memory adapters, the reference behaviour.

use webinar_bridge_tests::port_suite::{self, MemoryBackend};

#[tokio::test]
async fn queue() {
    port_suite::queue_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn queue_visibility() {
    port_suite::queue_visibility_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn queue_dedup_expiry() {
    port_suite::queue_dedup_expiry_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn dead_letters() {
    port_suite::dead_letters_list_redrive_and_erase(&MemoryBackend).await;
}

#[tokio::test]
async fn receipt_log() {
    port_suite::receipt_log_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn parked_webhooks() {
    port_suite::parked_webhooks_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn event_log() {
    port_suite::event_log_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn contact_store() {
    port_suite::contact_store_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn tag_directory() {
    port_suite::tag_directory_suite(&MemoryBackend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency() {
    port_suite::concurrency_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn history_log() {
    port_suite::history_log_suite(&MemoryBackend).await;
}

#[tokio::test]
async fn zoom_ledger() {
    port_suite::zoom_ledger_suite(&webinar_bridge::platforms::zoom_ledger::MemoryZoomLedger::default()).await;
}

#[tokio::test]
async fn webinar_settings() {
    port_suite::webinar_settings_suite(&MemoryBackend).await;
}
