# Sourced by the quickstart scripts: create .venv once and install fedprune into it.
# torch is pinned to the CPU build available here; a looser spec would pull CUDA wheels.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FEDPRUNE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" \
  -e "$ROOT${EXTRAS:+[$EXTRAS]}"
