#!/usr/bin/env bash
# Installs the programs the tests run beside the crate, from the
# distribution's packages, idempotently: Prometheus and promtool (the
# metrics tests check the exposition with promtool and have a real
# Prometheus scrape the endpoint on loopback). A second run only checks.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  echo "test-tools: prometheus and promtool already installed" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "test-tools: prometheus and promtool are missing and this system has no apt-get;" \
    "install Prometheus (it provides both) with your package manager" >&2
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "test-tools: installing prometheus needs root (or sudo)" >&2; exit 1; }
  sudo=(sudo)
fi
echo "test-tools: installing prometheus (with promtool) from the distribution's packages" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a system service on Debian; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${sudo[@]}" systemctl stop prometheus || true
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null
echo "test-tools: ready: $(promtool --version 2>&1 | head -1)" >&2
