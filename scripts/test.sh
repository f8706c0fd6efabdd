#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (scripts/setup.sh: the OpenVINO runtime and the real models), then
# `cargo test`. The OpenVINO tests run against the real runtime; they fail,
# rather than skip, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test "$@"
