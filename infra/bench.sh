#!/usr/bin/env bash
# Builds the release binaries and runs the benchmark (tests/src/bin/bench.rs); arguments go to it:
#   infra/bench.sh [--quick] [--registrants N] [--cap R] [--seed S] [--out bench.json]
# Builds the whole workspace (toolchain.md: `-p` alone re-resolves features and rebuilds more).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
exec target/release/bench "$@"
