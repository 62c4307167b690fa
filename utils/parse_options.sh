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
#
# Generated help: when the calling script marks its option block with a line starting
# `# ---- options` and one starting `# ---- end of options`, `--help` also lists every option of
# the block, generated from the script's own text so it cannot drift:
#   nj=4                # parallel jobs          ->   --nj 4        parallel jobs
# (the default as written, the comment after it as the meaning; comment lines inside the block
# are printed as they are, e.g. as section titles).

__po_script=$(basename "$0")
# The calling script's file. A relative path may be stale if the script cd'ed since it started:
# then try it from the previous directory ($OLDPWD), then its base name here.
__po_file=${BASH_SOURCE[1]:-$0}
if [ ! -f "$__po_file" ]; then
  if [ -n "${OLDPWD:-}" ] && [ -f "$OLDPWD/$__po_file" ]; then __po_file=$OLDPWD/$__po_file
  else __po_file=$(basename "$__po_file"); fi
fi

__po_options_help() {
  awk '
    /^# ---- end of options/ { inside = 0 }
    inside && /^[A-Za-z_][A-Za-z0-9_]*=/ {
      name = $0; sub(/=.*/, "", name)
      rest = substr($0, length(name) + 2)
      if (substr(rest, 1, 1) == "\"") {          # a quoted default: up to the closing quote
        end = index(substr(rest, 2), "\"")
        value = substr(rest, 1, end + 1); rest = substr(rest, end + 2)
      } else {
        value = rest; sub(/[ \t].*/, "", value); rest = substr(rest, length(value) + 1)
      }
      if (value == "") value = "\"\""
      comment = rest; sub(/^[ \t]*/, "", comment)
      if (substr(comment, 1, 1) == "#") { sub(/^#[ \t]*/, "", comment) } else { comment = "" }
      left = "  --" name " " value
      if (comment == "") print left
      else if (length(left) < 32) printf "%-32s %s\n", left, comment
      else printf "%s\n%-32s %s\n", left, "", comment
      next
    }
    inside && /^[ \t]*#/ { line = $0; sub(/^[ \t]*#[ \t]*/, "", line); print " " line; next }
    /^# ---- options/ { inside = 1; print "Options (--name value or --name=value; the default follows the name):" }
  ' "$1"
}

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
      if [ -f "$__po_file" ] && grep -q '^# ---- options' "$__po_file"; then
        __po_options_help "$__po_file"
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

unset __po_option __po_name __po_value __po_old __po_script __po_file
unset -f __po_fail __po_options_help
true
