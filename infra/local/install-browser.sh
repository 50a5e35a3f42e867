#!/usr/bin/env bash
# The console's browser test (tests/tests/console_browser.rs): Debian's chromium, and Playwright
# for Python in .tools/ (it drives /usr/bin/chromium; `playwright install` is never run).
set -euo pipefail
cd "$(dirname "$0")/../.."
PLAYWRIGHT_VERSION=1.49.1

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
/usr/bin/chromium --version

if [ ! -x .tools/bin/python ]; then
  python3 -m venv .tools
fi
if ! .tools/bin/python -c "import playwright, importlib.metadata as m; assert m.version('playwright') == '$PLAYWRIGHT_VERSION'" 2>/dev/null; then
  .tools/bin/pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi
.tools/bin/python -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
