#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs (PyPI tools into .tools/ and
# .sam/), then runs every check. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "tools: moto, cargo-lambda and zig from PyPI into .tools/"
bash infra/local/install-tools.sh

step "format: cargo fmt --check"
cargo fmt --all -- --check

step "lint: cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build --workspace --all-targets

step "tests: cargo test --workspace"
cargo test --workspace

step "template: cfn-lint, serverless rules, sam validate --lint"
bash infra/validate-template.sh

step "cargo-lambda local flow: signed Zoom webhook -> ingest -> SQS (moto) -> consumer -> simulator"
bash infra/local/lambda-flow.sh

step "dependency audit: cargo-deny bans, licenses, sources (advisories need network)"
bash infra/audit.sh

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - started ))"
