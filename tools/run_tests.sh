#!/usr/bin/env bash
# Set up (idempotent) and run the test suite (the README's test command; .ci/run calls it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/setup.sh" --test
cd "$root"
. ./path.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Arguments that start with a path select tests (tools/run_tests.sh tests/frontend -x); otherwise
# they are pytest options for the whole suite.
if [ $# -gt 0 ] && [ -e "${1%%::*}" ]; then
  python -m pytest -q -p no:cacheprovider "$@"
else
  python -m pytest -q -p no:cacheprovider tests "$@"
fi
