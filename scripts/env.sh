# Sourced by the other scripts: where the native libraries are, for builds that link them.
KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KILN_CACHE="${KILN_CACHE:-$KILN_ROOT/.kiln-cache}"
export LIBTORCH="${LIBTORCH:-$KILN_CACHE/native/libtorch}"
export LIBTORCH_BYPASS_VERSION_CHECK=1
export PATH="$KILN_CACHE/venv/bin:$PATH"
# What scripts/build.sh builds and scripts/make_fixtures.sh needs: one target set, so that both
# resolve the same dependency features and the second build is a no-op.
KILN_BUILD_TARGETS=(--workspace --bins --example make_torch_fixture)
