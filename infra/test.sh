#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs (PyPI tools into .tools/ and
# .sam/), then runs every check. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

current=""
step() { current="$*"; printf '\n==> %s\n' "$*"; }
trap 'echo "test.sh: FAILED in step: ${current}" >&2' ERR
started=$(date +%s)

# Fails fast, with one line naming the tool, before anything long runs.
require() {
    local tool="$1" hint="$2"
    shift 2
    "$@" >/dev/null 2>&1 || { echo "test.sh: FAILED: ${tool} is missing: ${hint}" >&2; exit 1; }
}
step "prerequisites: cargo, rustfmt, clippy, python3"
require cargo "install Rust with rustup (https://rustup.rs)" cargo --version
require rustfmt "rustup component add rustfmt" cargo fmt --version
require clippy "rustup component add clippy" cargo clippy --version
require python3 "install python3 with venv support (Debian/Ubuntu: apt-get install python3-venv)" python3 --version

step "tools: moto, cargo-lambda and zig from PyPI into .tools/"
bash infra/local/install-tools.sh

step "browser: Debian chromium + Playwright for Python (the console's browser test)"; bash infra/local/install-browser.sh

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

step "dependency audit: cargo fetch --locked, then cargo-deny bans, licenses, sources (advisories need network)"
bash infra/audit.sh

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - started ))"
