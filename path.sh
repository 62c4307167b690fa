# Source me: puts the funasr_lite package, utils/ and the project's .venv on the paths.
# Works from any directory (bash and zsh).
FUNASR_LITE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
export FUNASR_LITE_ROOT
if [ -f "$FUNASR_LITE_ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$FUNASR_LITE_ROOT/.venv/bin/activate"
fi
export PATH=$FUNASR_LITE_ROOT/utils:$FUNASR_LITE_ROOT/tools:$PATH
export PYTHONPATH=$FUNASR_LITE_ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONIOENCODING=UTF-8
export LC_ALL=C.UTF-8
# Progress bars only on a terminal and never under CI.
if [ -n "${CI:-}" ] || [ ! -t 2 ]; then export FUNASR_LITE_NO_PROGRESS=1; fi
