#!/usr/bin/env bash
# Kaldi-style option parsing. SOURCE it after setting the defaults:
#
#   nj=4; use_gpu=false; help_message="Usage: $0 [--nj N] [--use-gpu true|false] <dir>"
#   . utils/parse_options.sh
#
# Then `--nj 8` sets nj=8, `--use-gpu true` sets use_gpu=true (dashes become underscores),
# and the positional arguments stay in "$@". Rules:
#   * an option sets a variable only if the caller already defined it; else: error, exit 1;
#   * `--name value` and `--name=value` are both accepted;
#   * a variable whose default is true/false only takes true or false;
#   * `--config FILE` sources FILE (lines like `nj=8`), later options override it;
#   * `--help` / `-h` prints $help_message and exits 0;
#   * parsing stops at the first argument that is not an option, or after `--`.
# Helper variables start with __po_ and are unset at the end, so the caller's names are safe.

__po_script=$(basename "$0")

__po_fail() {
  echo "$__po_script: $*" >&2
  [ -n "${help_message:-}" ] && printf '%s\n' "$help_message" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then
        printf '%s\n' "$help_message"
      else
        echo "$__po_script: no help message (set help_message before sourcing parse_options.sh)"
      fi
      exit 0 ;;
    --)
      shift
      break ;;
    --config|--config=*)
      if [ "$1" = --config ]; then
        [ $# -ge 2 ] || __po_fail "option --config needs a file"
        __po_value=$2; shift 2
      else
        __po_value=${1#--config=}; shift
      fi
      [ -f "$__po_value" ] || __po_fail "config file '$__po_value' not found"
      # shellcheck disable=SC1090
      . "$__po_value" || __po_fail "failed to source config file '$__po_value'"
      ;;
    --*)
      if [[ "$1" == --*=* ]]; then
        __po_option=${1%%=*}; __po_value=${1#*=}; shift
      else
        [ $# -ge 2 ] || __po_fail "option $1 needs a value"
        __po_option=$1; __po_value=$2; shift 2
      fi
      __po_name=${__po_option#--}
      __po_name=${__po_name//-/_}
      [[ "$__po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || __po_fail "invalid option name '$__po_option'"
      # Only variables the caller defined are options: this catches typos.
      [ -n "${!__po_name+set}" ] || __po_fail "unknown option $__po_option"
      __po_old=${!__po_name}
      if [ "$__po_old" = true ] || [ "$__po_old" = false ]; then
        [ "$__po_value" = true ] || [ "$__po_value" = false ] ||
          __po_fail "option $__po_option takes true or false, got '$__po_value'"
      fi
      printf -v "$__po_name" '%s' "$__po_value"
      ;;
    *)
      break ;;
  esac
done

unset __po_option __po_name __po_value __po_old __po_script
unset -f __po_fail
true
