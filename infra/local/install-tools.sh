#!/usr/bin/env bash
# Installs the local emulator tool chain into /work/main/.tools (a Python venv):
# moto (SQS + DynamoDB server), cargo-lambda and zig (cargo-lambda finds zig via `python3 -m ziglang`).
# Idempotent: packages already at the pinned versions are left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
PINS=("moto==5.2.5" "cargo-lambda==1.9.2" "ziglang==0.17.1")

installed_version() {
    "$TOOLS/bin/python3" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass" "$1" 2>/dev/null || true
}

all_pinned() {
    [[ -x "$TOOLS/bin/moto_server" && -x "$TOOLS/bin/cargo-lambda" ]] || return 1
    local pin
    for pin in "${PINS[@]}"; do
        [[ "$(installed_version "${pin%%==*}")" == "${pin##*==}" ]] || return 1
    done
}

if all_pinned; then
    echo "install-tools: moto 5.2.5, cargo-lambda 1.9.2, ziglang 0.17.1 already in $TOOLS"
    exit 0
fi

fail() { echo "install-tools: FAILED: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || fail "python3 is not installed (needed for moto, cargo-lambda and zig)"
if [[ ! -x "$TOOLS/bin/python3" ]]; then
    python3 -m venv "$TOOLS" || fail "python3 -m venv $TOOLS did not work (on Debian/Ubuntu: apt-get install python3-venv)"
fi
# One pin at a time, so a failure names the tool that could not be installed.
for pin in 'moto[server]==5.2.5' cargo-lambda==1.9.2 ziglang==0.17.1; do
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "$pin" \
        || fail "could not install ${pin} from PyPI (pip output above); needs network access to pypi.org"
done
all_pinned || fail "moto_server or cargo-lambda is missing from $TOOLS/bin after the install"
echo "install-tools: installed into $TOOLS (put $TOOLS/bin first on PATH for cargo lambda)"
