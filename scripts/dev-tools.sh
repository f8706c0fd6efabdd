#!/usr/bin/env bash
# Installs the tools the CI gates use beyond cargo itself, idempotently:
# cargo-deny (the dependency policy in deny.toml) and cbindgen (the C
# header include/accelpool.h). A second run only checks
# the version and returns at once.
set -euo pipefail
CARGO_DENY_VERSION=0.20.2
if cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  echo "dev-tools: cargo-deny $CARGO_DENY_VERSION already installed" >&2
else
  echo "dev-tools: installing cargo-deny $CARGO_DENY_VERSION from crates.io" >&2
  cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION"
fi
CBINDGEN_VERSION=0.29.2
if cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  echo "dev-tools: cbindgen $CBINDGEN_VERSION already installed" >&2
else
  echo "dev-tools: installing cbindgen $CBINDGEN_VERSION from crates.io" >&2
  cargo install --locked --quiet "cbindgen@$CBINDGEN_VERSION"
fi
