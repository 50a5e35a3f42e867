#!/usr/bin/env bash
# Dependency audit with cargo-deny and the policy in infra/deny.toml (issue 8).
#
#   bash infra/audit.sh
#
# - Uses cargo-deny from .tools/cargo/bin (outside CARGO_HOME, so a fresh or emptied cargo home
#   still finds it), else `cargo deny` on PATH; installs it into .tools/cargo when neither is
#   there (`cargo install --root`, a compile of ~4 min on 2 cores, once).
# - Downloads every crate of Cargo.lock first (`cargo fetch --locked`, all platforms): the
#   offline checks read each crate's manifest, including crates built only for other platforms,
#   and a fresh machine's registry cache has none of them.
# - Always checks licenses, bans and sources: offline, from Cargo.lock and the local registry.
# - Then checks advisories against the RustSec database, which is cloned from GitHub. Where
#   GitHub cannot be reached the check is skipped with a notice (AUDIT_ADVISORIES=auto, the
#   default); AUDIT_ADVISORIES=require makes that a failure, AUDIT_ADVISORIES=skip never tries.
#   A reachable database that reports an advisory always fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# The config schema changes between cargo-deny releases; this is the version deny.toml is for.
CARGO_DENY_VERSION="0.20.2"
advisories_mode="${AUDIT_ADVISORIES:-auto}"
DENY_ROOT="$PWD/.tools/cargo"
export PATH="${DENY_ROOT}/bin:${PATH}"
deny=(cargo deny --manifest-path Cargo.toml --config infra/deny.toml --locked)

if cargo deny --version >/dev/null 2>&1; then
    echo "cargo-deny: $(cargo deny --version)"
else
    echo "cargo-deny: installing ${CARGO_DENY_VERSION} from crates.io into ${DENY_ROOT} (cargo install --locked)"
    install_started=$(date +%s)
    if ! cargo install cargo-deny --locked --version "${CARGO_DENY_VERSION}" --root "${DENY_ROOT}"; then
        echo "audit: FAILED to install cargo-deny ${CARGO_DENY_VERSION} from crates.io (cargo output above); needs network access to crates.io" >&2
        exit 1
    fi
    echo "cargo-deny: installed in $(( $(date +%s) - install_started ))s"
fi

echo "==> crates of Cargo.lock for every platform (cargo fetch --locked)"
if ! cargo fetch --locked; then
    echo "audit: FAILED to download the crates of Cargo.lock (cargo fetch --locked, output above); needs network access to crates.io" >&2
    exit 1
fi

echo "==> licenses, bans, sources (offline)"
"${deny[@]}" --offline check bans licenses sources

case "${advisories_mode}" in
    skip)
        echo "==> advisories: skipped (AUDIT_ADVISORIES=skip)"
        ;;
    auto | require)
        echo "==> advisories (RustSec database from GitHub)"
        log=$(mktemp)
        trap 'rm -f "${log}"' EXIT
        if "${deny[@]}" check advisories 2>&1 | tee "${log}"; then
            :
        elif [[ "${advisories_mode}" == auto ]] && grep -q "failed to fetch advisory database" "${log}"; then
            echo "advisories: SKIPPED, the RustSec database could not be fetched (no network to GitHub)."
            echo "            Run with network access, or AUDIT_ADVISORIES=require to make this fail."
        else
            exit 1
        fi
        ;;
    *)
        echo "AUDIT_ADVISORIES must be auto, require or skip, not '${advisories_mode}'" >&2
        exit 2
        ;;
esac
echo "audit passed"
