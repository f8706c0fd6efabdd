#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (scripts/setup.sh --server: the OpenVINO runtime, the real models and
# MLServer for the remote group; scripts/test-tools.sh: Prometheus and
# promtool for the metrics tests, a font for the OCR tests), then `cargo
# test` with the remote group built in. The OpenVINO and remote tests run
# against the real runtime and a real server; they fail, rather than skip,
# when these are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --server
./scripts/test-tools.sh
cargo test --features remote "$@"
