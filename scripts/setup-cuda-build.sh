#!/usr/bin/env bash
# Provides the LLVM that `--features cuda` needs at build time, from PyPI, so the build never
# downloads anything else.
#
# Burn's CUDA backend compiles its kernels to PTX through LLVM's NVPTX target (crate
# `cubecl-llvm`). That crate's build-dependency `tracel-llvm-bundler` downloads an LLVM archive
# from a release page unless its install directory already holds a marker file; this script fills
# that directory with the same LLVM release from the PyPI package `mlc-llvm-static` (static, PIC
# libraries with NVPTX, headers, and an `llvm-config` front end) and writes the marker.
#
#   scripts/setup-cuda-build.sh            # idempotent: does nothing when already in place
#   cargo build --release -p allam-cli --features cuda
#
# Needs python3 with pip (for the wheel, about 90 MB) and a C++ compiler (for cubecl's shims).
# LLVM ends up linked statically into the binary: the GPU machine needs only the NVIDIA driver
# and `libdevice.10.bc` from a CUDA toolkit (found through CUDA_PATH, else /usr/local/cuda).
set -euo pipefail

# --- pinned in one place -------------------------------------------------------------------
# The bundler release that Cargo.lock resolves: it names the directory the build looks in.
BUNDLER_VERSION="23.1.0-4"
# An LLVM 23.1 from PyPI; `[all]` adds the non-host backends (NVPTX among them).
LLVM_WHEEL="mlc-llvm-static[all]==23.1.1.post0"
LLVM_MAJOR_MINOR="23.1"
# ------------------------------------------------------------------------------------------

cd "$(dirname "$0")/.."

locked=$(awk '/^name = "tracel-llvm-bundler"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ -z "$locked" ]]; then
    echo "error: Cargo.lock has no tracel-llvm-bundler; has Burn stopped using it for CUDA?" >&2
    echo "       Check how cubecl-llvm finds LLVM now and update this script." >&2
    exit 1
fi
if [[ "$locked" != "$BUNDLER_VERSION" ]]; then
    echo "error: Cargo.lock resolves tracel-llvm-bundler $locked, this script provides the" >&2
    echo "       directory for $BUNDLER_VERSION. After a Burn upgrade: read that bundler's" >&2
    echo "       src/config.rs (llvm_path, TRACEL_LLVM_VERSION), then update BUNDLER_VERSION and," >&2
    echo "       if the LLVM version moved, LLVM_WHEEL and LLVM_MAJOR_MINOR above." >&2
    exit 1
fi

# `dirs::data_local_dir()` on Linux: $XDG_DATA_HOME, else ~/.local/share.
data_dir="${XDG_DATA_HOME:-$HOME/.local/share}"
dest="$data_dir/tracel/tracel-llvm-$BUNDLER_VERSION"
sentinel="$dest/.tracel-llvm-installed"

works() {
    local version
    version=$("$dest/bin/llvm-config" --version 2>/dev/null) || return 1
    [[ "$version" == "$LLVM_MAJOR_MINOR".* ]] || return 1
    "$dest/bin/llvm-config" --targets-built 2>/dev/null | grep -qw NVPTX
}

if [[ -f "$sentinel" ]] && works; then
    echo "LLVM $("$dest/bin/llvm-config" --version) with NVPTX is in place: $dest"
    exit 0
fi

staging=$(mktemp -d "${TMPDIR:-/tmp}/allam-llvm.XXXXXX")
trap 'rm -rf "$staging"' EXIT
echo "installing $LLVM_WHEEL into $dest"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-compile --target "$staging" "$LLVM_WHEEL"
prefix="$staging/mlc_llvm_static/static"
if [[ ! -x "$prefix/bin/llvm-config" ]]; then
    echo "error: the wheel has no static/bin/llvm-config (layout changed?): see $staging" >&2
    trap - EXIT
    exit 1
fi

# Replace whatever half-finished directory is there; the marker goes in last.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$prefix" "$dest"
if ! works; then
    echo "error: $dest/bin/llvm-config does not report LLVM $LLVM_MAJOR_MINOR with NVPTX" >&2
    exit 1
fi
touch "$sentinel"
echo "LLVM $("$dest/bin/llvm-config" --version) with NVPTX is in place: $dest"
