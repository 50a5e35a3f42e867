//! The shape of bench.json, never its speeds (the machines are shared and noisy): every figure
//! the README and CI read is there, with the right type, and the run converged.
//!
//! Checks the file named by `BENCH_JSON` when set (a CI step that already ran the bench), else
//! runs a small `bench --quick` itself. Needs the built `webinar-bridge` binary
//! (`cargo build --workspace --all-targets`), as the e2e suites do.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn run_small_quick_bench() -> Value {
    let out = std::env::temp_dir().join(format!("bench-shape-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--quick", "--registrants", "60", "--cap", "40", "--out"])
        .arg(&out)
        .output()
        .expect("run the bench binary");
    assert!(
        output.status.success(),
        "bench --quick failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report = read(&out);
    let _ = std::fs::remove_file(&out);
    report
}

fn read(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).expect("bench.json is JSON")
}

/// `report` at the `/`-separated path, which must exist.
fn at<'a>(report: &'a Value, path: &str) -> &'a Value {
    let value = report.pointer(&format!("/{path}")).unwrap_or(&Value::Null);
    assert!(!value.is_null(), "bench.json has no {path}");
    value
}

fn number(report: &Value, path: &str) -> f64 {
    at(report, path).as_f64().unwrap_or_else(|| panic!("{path} is not a number"))
}

#[test]
fn bench_json_has_every_figure_and_the_run_converged() {
    let report = match std::env::var_os("BENCH_JSON") {
        Some(path) => read(&PathBuf::from(path)),
        None => run_small_quick_bench(),
    };
    for path in [
        "rate_cap/cap",
        "rate_cap/achieved_rps",
        "rate_cap/utilization",
        "rate_cap/http_429",
        "fleet/cap",
        "fleet/rate_per_instance",
        "fleet/achieved_rps",
        "fleet/utilization",
        "fleet/http_429",
        "fleet/max_calls_in_any_second",
        "fleet/max_first_second_calls",
        "fleet/dead_letters",
        "run/timings_seconds/fleet",
        "economy/events",
        "economy/calls",
        "economy/calls_per_event",
        "economy/naive_calls",
        "economy/ratio_to_naive",
        "economy/lower_bound_calls",
        "economy/ratio_to_lower_bound",
        "ingest/min_requests_per_cpu_second",
        "ingest/http/rate_per_second",
        "ingest/http/p50_ms",
        "ingest/http/p99_ms",
        "memory/consumer_peak_rss_kib",
        "memory/serve_peak_rss_kib",
        "end_to_end/p50_ms",
        "end_to_end/p95_ms",
        "contact/binary_p50_ms",
        "contact/binary_p95_ms",
        "contact/binary_cpu_mean_ms",
        "contact/in_process_p50_ms",
        "run/cores",
        "run/log/events",
        "run/timings_seconds/total",
        "run/timings_seconds/reconcile",
        "reconcile/registrants",
        "reconcile/pages",
        "reconcile/platform/calls",
        "reconcile/platform/median_rps",
        "reconcile/platform/utilization",
        "reconcile/platform/max_calls_in_any_second",
        "reconcile/platform/http_429",
        "reconcile/klicktipp/calls",
        "reconcile/klicktipp/lower_bound_calls",
        "reconcile/klicktipp/ratio_to_lower_bound",
    ] {
        number(&report, path);
    }
    let sources: Vec<&str> = at(&report, "ingest/in_process")
        .as_array()
        .expect("ingest/in_process is a list")
        .iter()
        .map(|rate| {
            assert!(rate["requests_per_cpu_second"].is_number(), "{rate}");
            rate["source"].as_str().expect("a source name")
        })
        .collect();
    assert_eq!(sources, ["webinarjam", "zoom", "generic"]);
    for bar in [
        "rate_cap",
        "economy_vs_naive",
        "economy_vs_lower_bound",
        "ingest_in_process",
        "ingest_http_p99",
        "fleet_rate_cap",
        "fleet_convergence",
        "memory_consumer",
        "memory_serve",
        "convergence",
        "contact_story_p95",
        "platform_pull",
        "reconcile_economy",
        "reconcile_convergence",
    ] {
        assert!(at(&report, &format!("bars/{bar}/holds")).is_boolean(), "bars/{bar}/holds is not a boolean");
    }
    // The fleet: one entry per consumer process (told apart by session), each with its first second.
    let instances = at(&report, "fleet/per_instance").as_array().expect("fleet/per_instance is a list");
    assert_eq!(instances.len() as f64, number(&report, "fleet/instances"), "{instances:?}");
    for instance in instances {
        for figure in ["calls", "first_second_calls", "max_calls_in_any_second", "http_429"] {
            assert!(instance[figure].is_number(), "fleet instance without {figure}: {instance}");
        }
        assert!(instance["calls"].as_f64() > Some(0.0), "an instance did nothing: {instance}");
    }
    // Facts, not speeds: the run did its work and every contact ended as the ground truth says.
    assert!(number(&report, "economy/calls") > 0.0);
    assert!(number(&report, "ingest/http/requests") > 0.0);
    assert_eq!(
        number(&report, "convergence/matching"),
        number(&report, "convergence/contacts"),
        "{}",
        at(&report, "convergence")
    );
    assert_eq!(number(&report, "fleet/dead_letters"), 0.0);
    assert_eq!(number(&report, "contact/stored_steps"), 100_000.0, "contact is measured over 100,000 stored steps");
    // The backfill: pages left in FIFO order, and every pulled contact reached KlickTipp right.
    assert_eq!(at(&report, "reconcile/platform/fifo"), &Value::Bool(true), "{}", at(&report, "reconcile/platform"));
    assert_eq!(
        number(&report, "reconcile/convergence/matching"),
        number(&report, "reconcile/convergence/contacts"),
        "{}",
        at(&report, "reconcile/convergence")
    );
    assert_eq!(
        number(&report, "fleet/convergence/matching"),
        number(&report, "fleet/convergence/contacts"),
        "{}",
        at(&report, "fleet/convergence")
    );
}
