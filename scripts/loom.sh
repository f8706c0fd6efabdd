#!/usr/bin/env bash
# Runs the loom models (src/loom_models.rs): the result slot, admission
# against shutdown, and the ledger's idle wake-up, explored interleaving by
# interleaving. A build of its own (`--cfg loom` swaps in loom's atomics,
# lock and condvar), kept apart from the normal one in target/loom.
#
#   ./scripts/loom.sh                       # the bound CI uses
#   LOOM_MAX_PREEMPTIONS=4 ./scripts/loom.sh  # a deeper search
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
start=$(date +%s)
cargo test --release --lib loom_models -- --test-threads=2 "$@"
echo "loom models passed in $(( $(date +%s) - start )) s (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
