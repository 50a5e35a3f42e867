#!/usr/bin/env bash
# Lints template.yaml offline, the way CI does: no AWS credentials, no Docker, no network after the
# first install. Installs the pinned linters into ./.sam once (a later run with the same versions
# skips the install), then runs:
#   1. cfn-lint                    CloudFormation schema, intrinsic functions, best practices
#   2. cfn-lint + serverless rules Lambda/SQS/API Gateway rules (cfn-lint-serverless)
#   3. sam validate --lint         the SAM transform itself plus cfn-lint on its output
# Usage: infra/validate-template.sh [template]   (default: template.yaml at the repository root)
# Rules this template disables are listed, with the reason, in the resource's Metadata.cfn-lint.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEMPLATE="${1:-template.yaml}"
VENV="$ROOT/.sam"
PINS=("aws-sam-cli==1.170.0" "cfn-lint==1.58.0" "cfn-lint-serverless==0.3.6")

# No telemetry calls home; the region only feeds the SAM transform's pseudo parameters.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

pins_installed() {
  [[ -x "$VENV/bin/python" ]] || return 1
  "$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

start="$(now)"
if pins_installed; then
  echo "install: pinned linters already in .sam, skipped ($(elapsed "$start"))"
else
  if [[ ! -x "$VENV/bin/python" ]] && ! python3 -m venv "$VENV"; then
    echo "validate-template: FAILED: python3 -m venv $VENV did not work (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  fi
  # One pin at a time, so a failure names the linter that could not be installed.
  for pin in "${PINS[@]}"; do
    if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check "$pin"; then
      echo "validate-template: FAILED: could not install ${pin} from PyPI (pip output above); needs network access to pypi.org" >&2
      exit 1
    fi
  done
  echo "install: ${PINS[*]} ($(elapsed "$start"))"
fi

failed=0

# cfn-lint's exit code is a bitmask: 1 crash, 2 error, 4 warning, 8 informational. Errors and
# warnings fail the check (the template has none, and the linters are pinned, so a new one comes
# from a template change); informational findings are printed but pass.
run_cfn_lint() {
  local label="$1"; shift
  local t rc=0
  t="$(now)"
  "$VENV/bin/cfn-lint" "$@" || rc=$?
  if (( rc & 7 )); then
    echo "$label: FAILED (exit $rc) ($(elapsed "$t"))"
    failed=1
  else
    echo "$label: ok (exit $rc) ($(elapsed "$t"))"
  fi
}

run_cfn_lint "cfn-lint" "$TEMPLATE"
# -t must come before -a, otherwise cfn-lint reads the template path as a rules directory.
run_cfn_lint "cfn-lint serverless rules" -t "$TEMPLATE" -a cfn_lint_serverless.rules

t="$(now)"
if "$VENV/bin/sam" validate --lint --template-file "$TEMPLATE"; then
  echo "sam validate --lint: ok ($(elapsed "$t"))"
else
  echo "sam validate --lint: FAILED ($(elapsed "$t"))"
  failed=1
fi

echo "total: $(elapsed "$start")"
exit "$failed"
