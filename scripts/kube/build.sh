#!/usr/bin/env bash
# Builds a Kubernetes control plane for the tests, once, into a cache outside the clone:
#   ${KILN_KUBE_CACHE:-$HOME/.cache/kiln/kube}/v1.37.2/bin/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler}
# from the Go modules k8s.io/kubernetes v1.37.2 and go.etcd.io/etcd/server/v3 (the wrapper
# modules in scripts/kube/go/, sources from the Go module proxy). Each binary gets a stamp
# `.NAME.done` holding a hash of its wrapper module; a binary whose stamp matches is skipped,
# so a second run (or a fresh clone on the same machine) is a no-op.
#   scripts/kube/build.sh          build what is missing, print the bin folder
#   scripts/kube/build.sh --print  print the bin folder only
# Needs Go 1.26+. Cold, on two cores, each Kubernetes binary takes many minutes and ~2 GiB to
# link: they are built one at a time, under `nice` (KILN_KUBE_NICE, default 19).
set -euo pipefail

KUBE_VERSION=v1.37.2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${KILN_KUBE_CACHE:-$HOME/.cache/kiln/kube}"
BIN="$CACHE/$KUBE_VERSION/bin"

if [ "${1:-}" = "--print" ]; then
  echo "$BIN"
  exit 0
fi

log() { echo "kube/build.sh: $*" >&2; }

# A hash of everything a binary is built from: its module's go.mod/go.sum and Go sources.
inputs_hash() {
  local module="$1" main="$2"
  (cd "$module" && find go.mod go.sum internal "$main" -type f -name '*.go' -o -type f -name 'go.*' \
    | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1
}

is_done() {
  local name="$1" hash="$2"
  [ -x "$BIN/$name" ] && [ -f "$BIN/.$name.done" ] && [ "$(head -n1 "$BIN/.$name.done")" = "$hash" ]
}

mkdir -p "$BIN"
# Two runs at once (CI and a test binary) would build the same thing twice: one waits.
exec 9>"$BIN/.lock"
flock 9

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi

# name, module folder, main package (relative to the module), extra ldflags
TARGETS=(
  "etcd|$HERE/go/etcd|.|"
  "kube-apiserver|$HERE/go/kube|cmd/kube-apiserver|k8s"
  "kube-controller-manager|$HERE/go/kube|cmd/kube-controller-manager|k8s"
  "kube-scheduler|$HERE/go/kube|cmd/kube-scheduler|k8s"
)

for target in "${TARGETS[@]}"; do
  IFS='|' read -r name module main flavour <<<"$target"
  hash="$(inputs_hash "$module" "$main")"
  if is_done "$name" "$hash"; then
    continue
  fi
  if ! command -v go >/dev/null; then
    log "Go (1.26 or newer) is needed to build $name once into $BIN"
    exit 1
  fi
  ldflags="-s -w"
  if [ "$flavour" = k8s ]; then
    # Without these, /version says v0.0.0 and the components' version checks misfire.
    v=k8s.io/component-base/version
    major="${KUBE_VERSION#v}"; major="${major%%.*}"
    minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
    ldflags+=" -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor"
    ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  fi
  log "building $name into $BIN (a cold build takes many minutes)"
  start=$(date +%s)
  (cd "$module" && CGO_ENABLED=0 nice -n "${KILN_KUBE_NICE:-19}" \
    go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$BIN/.$name.partial" "./$main")
  mv -f "$BIN/.$name.partial" "$BIN/$name"
  seconds=$(($(date +%s) - start))
  printf '%s\nbuilt in %ss on %s\n' "$hash" "$seconds" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$BIN/.$name.done"
  log "built $name in ${seconds}s"
done

echo "$BIN"
