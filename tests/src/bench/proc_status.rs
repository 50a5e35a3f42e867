//! Memory and CPU time from `/proc` (Linux): peak RSS (`VmHWM`) of a process, CPU time of the
//! calling thread.

use anyhow::Context as _;
use std::time::Duration;

/// Peak resident set size of `pid` in KiB (`VmHWM` in `/proc/<pid>/status`).
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_value(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// Peak resident set size of this process in KiB.
pub fn own_peak_rss_kib() -> anyhow::Result<u64> {
    status_value("/proc/self/status", "VmHWM:")
}

fn status_value(path: &str, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("{path} has no {key} line"))
}

/// CPU time this thread has run so far (`/proc/thread-self/schedstat`, nanoseconds on CPU):
/// what "per core" means when the machine is shared.
pub fn thread_cpu_time() -> anyhow::Result<Duration> {
    let path = "/proc/thread-self/schedstat";
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let nanos: u64 =
        stat.split_whitespace().next().and_then(|n| n.parse().ok()).with_context(|| format!("{path} is unreadable"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak_and_this_thread_used_cpu() {
        assert!(own_peak_rss_kib().expect("VmHWM") > 0);
        let before = thread_cpu_time().expect("schedstat");
        let mut x = 0u64;
        for i in 0..1_000_000 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(thread_cpu_time().expect("schedstat") > before);
    }
}
