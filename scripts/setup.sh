#!/usr/bin/env bash
# Installs everything accelpool needs at run time on a fresh machine, idempotently:
#   1. the OpenVINO runtime (the `openvino` wheel from PyPI) into a private venv,
#   2. the real PP-OCRv4 ONNX models, and the recogniser's character dictionary
#      ppocr_keys_v1.txt, from the `rapidocr-openvino` wheel into models/ppocr/;
#   3. with --server: MLServer, an Open Inference Protocol server, into the same
#      venv (the remote-group tests serve the classifier through it).
# A second run checks the stamps and returns in well under a second.
#
# Where things go (outside the source tree, so nothing fetched is ever committed):
#   ACCELPOOL_HOME (default: ${XDG_DATA_HOME:-$HOME/.local/share}/accelpool)
#     venv/                       python venv holding the openvino wheel (and benchmark_app)
#     wheels/                     the downloaded model wheel
# The runtime finds the library there by itself (see src/openvino/library.rs).
set -euo pipefail

OPENVINO_VERSION=2026.4.1
RAPIDOCR_VERSION=1.4.4
MLSERVER_VERSION=1.7.1

server=0
for arg in "$@"; do
  case $arg in
    --server) server=1 ;;
    *) printf 'setup: unknown argument %s (known: --server)\n' "$arg" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}

log() { printf 'setup: %s\n' "$*" >&2; }

# The install folder, chosen by the same rules as the runtime's library
# search (src/openvino/library.rs): only absolute values count; a relative
# or empty one is ignored with a warning, never resolved against the
# current folder.
home=
for var in ACCELPOOL_HOME XDG_DATA_HOME HOME; do
  value=${!var-}
  [ -n "${!var+set}" ] || continue
  case $value in
    /*) ;;
    *) log "warning: $var is '$value', not an absolute path; ignoring it"; continue ;;
  esac
  case $var in
    ACCELPOOL_HOME) home=$value ;;
    XDG_DATA_HOME) home=$value/accelpool ;;
    HOME) home=$value/.local/share/accelpool ;;
  esac
  break
done
if [ -z "$home" ]; then
  log "error: no install folder: set HOME or ACCELPOOL_HOME to an absolute path"
  exit 1
fi
venv="$home/venv"
# A path as a reader of the log wants it: inside the checkout relative to it,
# under the home folder with `~`.
show() {
  case $1 in
    "$repo"/*) printf '%s' "${1#"$repo"/}" ;;
    "${HOME:-/nonexistent}"/*) printf '~/%s' "${1#"$HOME"/}" ;;
    *) printf '%s' "$1" ;;
  esac
}

mkdir -p "$home"

# 1. OpenVINO runtime.
stamp="$venv/.openvino-$OPENVINO_VERSION"
if [ ! -f "$stamp" ]; then
  log "installing openvino==$OPENVINO_VERSION into $(show "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check --quiet "openvino==$OPENVINO_VERSION"
  touch "$stamp"
else
  log "openvino $OPENVINO_VERSION already installed in $(show "$venv")"
fi
lib=$(ls "$venv"/lib/python3*/site-packages/openvino/libs/libopenvino_c.so* 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
  log "error: the openvino wheel holds no libopenvino_c.so; remove $(show "$venv") and run again"
  exit 1
fi

# 2. Real models: the PP-OCRv4 ONNX files shipped inside the rapidocr-openvino wheel.
models="$repo/models/ppocr"
mstamp="$models/.rapidocr-openvino-$RAPIDOCR_VERSION"
if [ ! -f "$mstamp" ] || [ ! -f "$models/ppocr_keys_v1.txt" ]; then
  log "fetching rapidocr-openvino==$RAPIDOCR_VERSION (models only)"
  mkdir -p "$home/wheels" "$models"
  "$venv/bin/pip" download --disable-pip-version-check --quiet --no-deps \
    -d "$home/wheels" "rapidocr-openvino==$RAPIDOCR_VERSION"
  wheel=$(ls "$home"/wheels/rapidocr_openvino-"$RAPIDOCR_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  "$venv/bin/python" - "$wheel" "$models" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
wanted = {
    "rapidocr_openvino/models/ch_PP-OCRv4_det_infer.onnx": "det.onnx",
    "rapidocr_openvino/models/ch_ppocr_mobile_v2.0_cls_infer.onnx": "cls.onnx",
    "rapidocr_openvino/models/ch_PP-OCRv4_rec_infer.onnx": "rec.onnx",
    "rapidocr_openvino/ch_ppocr_rec/ppocr_keys_v1.txt": "ppocr_keys_v1.txt",
}
with zipfile.ZipFile(wheel) as z:
    for name, target in wanted.items():
        (out / target).write_bytes(z.read(name))
PY
  touch "$mstamp"
else
  log "PP-OCR models already in $(show "$models")"
fi

# 3. An Open Inference Protocol server for the remote-group tests.
if [ "$server" = 1 ]; then
  sstamp="$venv/.mlserver-$MLSERVER_VERSION"
  if [ ! -f "$sstamp" ]; then
    log "installing mlserver==$MLSERVER_VERSION into $(show "$venv")"
    "$venv/bin/pip" install --disable-pip-version-check --quiet "mlserver==$MLSERVER_VERSION"
    touch "$sstamp"
  else
    log "mlserver $MLSERVER_VERSION already installed in $(show "$venv")"
  fi
  log "ready: $(show "$venv/bin/mlserver")"
fi

log "ready: OpenVINO library $(show "$lib")"
log "ready: models in $(show "$models")"
