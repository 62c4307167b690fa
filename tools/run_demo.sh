#!/usr/bin/env bash
# Set up (idempotent) and run the demo recipe end to end on the embedded synthetic corpus.
# Extra arguments go to egs/aishell1/run.sh (e.g. --corpus_size tiny --stop_stage 2).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/setup.sh"
cd "$root/egs/aishell1"
exec bash run.sh "$@"
