#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (scripts/setup.sh: the OpenVINO runtime and the real models;
# scripts/test-tools.sh: Prometheus and promtool for the metrics tests), then
# `cargo test`. The OpenVINO tests run against the real runtime; they fail,
# rather than skip, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/test-tools.sh
cargo test "$@"
