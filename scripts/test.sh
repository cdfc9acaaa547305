#!/usr/bin/env bash
# Quickstart 2: install fedprune with its test extras and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k codecs
# FEDPRUNE_TEST_EXTRAS=test,ray also installs Ray, so the Ray client-pool test runs
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "${FEDPRUNE_TEST_EXTRAS:-test}"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
