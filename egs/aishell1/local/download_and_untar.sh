#!/usr/bin/env bash
# Download one part of AISHELL-1 (OpenSLR SLR33) and unpack it under <data-base>.
#
#   local/download_and_untar.sh [--remove-archive] <data-base> <url-base> <corpus-part>
#
# <corpus-part> is data_aishell or resource_aishell. The archive <url-base>/<part>.tgz is
# fetched to <data-base>/<part>.tgz (resumable: the transfer goes to <part>.tgz.part and is
# renamed when complete), unpacked to <data-base>/<part>/, and for data_aishell every
# per-speaker tarball wav/<SPK>.tar.gz is unpacked in place and then deleted. A finished part
# gets <data-base>/<part>/.complete, so running the script again does nothing.
#
# url-base: www.openslr.org/resources/33 (the default). Mirrors of the same files:
#   https://us.openslr.org/resources/33  https://openslr.elda.org/resources/33
#   https://openslr.magicdatatech.com/resources/33
# file:///some/dir also works (copy instead of download; used by the tests).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }
die() { echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) ERROR: $*" >&2; exit 1; }

usage="Usage: $0 [--remove-archive] <data-base> <url-base> <corpus-part>
  e.g.: $0 /export/data www.openslr.org/resources/33 data_aishell
  <corpus-part>: data_aishell | resource_aishell
  --remove-archive: delete <data-base>/<corpus-part>.tgz after it is unpacked"

remove_archive=false
if [ $# -gt 0 ] && [ "$1" = "--remove-archive" ]; then
  remove_archive=true
  shift
fi
if [ $# -ne 3 ]; then
  echo "$usage" >&2
  exit 1
fi
data_base=$1
url_base=${2%/}
part=$3

# Sizes in bytes of the archives on OpenSLR (and its mirrors, which serve the same files).
declare -A openslr_size=([data_aishell]=15582913665 [resource_aishell]=1246920)

case $part in
  data_aishell|resource_aishell) ;;
  *) echo "$usage" >&2; die "unknown corpus part '$part' (expected data_aishell or resource_aishell)" ;;
esac

mkdir -p "$data_base" || die "cannot create data directory $data_base"
data_base=$(cd "$data_base" && pwd)
part_dir=$data_base/$part
archive=$data_base/$part.tgz

if [ -f "$part_dir/.complete" ]; then
  log "$part_dir is already complete ($part_dir/.complete exists): nothing to do"
  exit 0
fi

# The size is only known for OpenSLR and its mirrors (all end in resources/33).
expected_size=
case $url_base in
  *resources/33) expected_size=${openslr_size[$part]} ;;
esac

file_size() { stat -c %s "$1"; }

check_size() {  # check_size <file>: fail if the size is known and differs
  local size
  [ -n "$expected_size" ] || return 0
  size=$(file_size "$1")
  if [ "$size" != "$expected_size" ]; then
    log "$1 has $size bytes, expected $expected_size"
    return 1
  fi
}

download() {  # download <url> <dest>: resumes <dest> if it exists
  local url=$1 dest=$2
  case $url in
    file://*)
      # A local "mirror": a plain copy (curl and wget differ in their file:// support).
      cp -- "${url#file://}" "$dest" ;;
    *)
      case $url in http://*|https://*|ftp://*) ;; *) url=https://$url ;; esac
      if command -v curl >/dev/null 2>&1; then
        curl --fail --location --retry 3 --continue-at - --output "$dest" "$url"
      elif command -v wget >/dev/null 2>&1; then
        wget --tries=3 --continue --output-document="$dest" "$url"
      else
        die "neither curl nor wget is installed"
      fi ;;
  esac
}

fetch_archive() {
  local partial=$archive.part
  if [ -f "$archive" ] && ! check_size "$archive"; then
    log "removing $archive (wrong size) and downloading it again"
    rm -f -- "$archive"
  fi
  [ -f "$archive" ] && return 0
  if [ -f "$partial" ] && [ -n "$expected_size" ] && [ "$(file_size "$partial")" -gt "$expected_size" ]; then
    log "$partial is larger than the archive should be: starting over"
    rm -f -- "$partial"
  fi
  if [ -f "$partial" ]; then
    log "resuming the download into $partial ($(file_size "$partial") bytes so far)"
  fi
  log "downloading $url_base/$part.tgz to $archive"
  download "$url_base/$part.tgz" "$partial" || die "downloading $url_base/$part.tgz failed (rerun to resume)"
  check_size "$partial" || die "$partial is incomplete or corrupt; rerun to resume, or delete it to start over"
  mv -- "$partial" "$archive"
}

# GNU tar refuses members with '..', strips a leading '/' and does not write through symlinks
# it unpacked (tests/reliability/test_strangers.py); as root it would also restore the archive's
# owners and setuid bits, which a downloaded corpus has no business setting.
safe_tar=(--no-same-owner --no-same-permissions)

# Fetch and unpack the outer archive once; .extracted lets a rerun (after a failed inner
# tarball, say) go straight to the speaker tarballs without the archive.
if [ ! -f "$part_dir/.extracted" ]; then
  fetch_archive
  log "unpacking $archive into $data_base"
  tar -C "$data_base" "${safe_tar[@]}" -xzf "$archive" \
    || die "unpacking $archive failed (delete it and rerun to download it again)"
  [ -d "$part_dir" ] || die "$archive did not contain the directory $part/"
  touch "$part_dir/.extracted"
fi

if [ "$part" = data_aishell ]; then
  wav_dir=$part_dir/wav
  [ -d "$wav_dir" ] || die "$wav_dir is missing after unpacking $archive"
  failed=()
  num_done=0
  for speaker_tarball in "$wav_dir"/*.tar.gz; do
    [ -e "$speaker_tarball" ] || continue  # no match: the glob stays literal
    if tar -C "$wav_dir" "${safe_tar[@]}" -xzf "$speaker_tarball"; then
      rm -f -- "$speaker_tarball"
      num_done=$((num_done + 1))
    else
      log "ERROR: unpacking $speaker_tarball failed"
      failed+=("$(basename "$speaker_tarball")")
    fi
  done
  log "unpacked $num_done speaker tarballs in $wav_dir"
  if [ ${#failed[@]} -gt 0 ]; then
    die "${#failed[@]} speaker tarball(s) could not be unpacked: ${failed[*]}" \
      "(they are left in $wav_dir; remove $archive and $part_dir and rerun to fetch them again)"
  fi
fi

if $remove_archive && [ -f "$archive" ]; then
  log "removing $archive (--remove-archive)"
  rm -f -- "$archive"
fi

touch "$part_dir/.complete"
log "$part is ready in $part_dir"
