#!/usr/bin/env bash
# Quickstart 1: install fedprune and run the default local federation (W1: 10 clients, 30 rounds,
# run preset "compact"; --preset fedavg-dense runs the dense float32 FedAvg baseline).
# Extra arguments go to `fedprune simulate`, e.g. scripts/simulate.sh --clients 3 --rounds 5
set -euo pipefail
source "$(dirname "$0")/_venv.sh" ""
exec "$VENV/bin/fedprune" simulate "$@"
