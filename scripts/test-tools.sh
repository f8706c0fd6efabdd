#!/usr/bin/env bash
# Installs what the tests use beside the crate, from the distribution's
# packages, idempotently (a second run only checks):
#   - Prometheus and promtool: the metrics tests check the exposition with
#     promtool and have a real Prometheus scrape the endpoint on loopback;
#   - the DejaVu fonts (fonts-dejavu-core): the OCR tests render known
#     text with DejaVu Sans, copied to models/fonts/ in the checkout;
#   - nginx: the remote-group TLS tests put it in front of the test server
#     (which speaks neither TLS nor tokens) to terminate TLS and check a
#     bearer token, on loopback.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'test-tools: %s\n' "$*" >&2; }

font_file() { dpkg -L fonts-dejavu-core 2>/dev/null | grep '/DejaVuSans\.ttf$' | head -n 1 || true; }

packages=()
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  packages+=(prometheus)
fi
if [ -z "$(font_file)" ]; then
  packages+=(fonts-dejavu-core)
fi
if [ ! -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null; then
  packages+=(nginx-light)
fi

if [ ${#packages[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    log "missing: ${packages[*]}, and this system has no apt-get; install them with your package manager"
    exit 1
  fi
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { log "installing ${packages[*]} needs root (or sudo)"; exit 1; }
    sudo=(sudo)
  fi
  log "installing ${packages[*]} from the distribution's packages"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # The prometheus package starts a system service on Debian; the tests start their own.
  # So does nginx's (on port 80); the TLS tests start their own.
  if command -v systemctl >/dev/null; then
    for service in prometheus nginx; do
      if systemctl is-active --quiet "$service" 2>/dev/null; then
        "${sudo[@]}" systemctl stop "$service" || true
      fi
    done
  fi
fi

command -v prometheus >/dev/null && command -v promtool >/dev/null
log "ready: $(promtool --version 2>&1 | head -1)"

font=$(font_file)
if [ -z "$font" ]; then
  log "error: fonts-dejavu-core is installed but holds no DejaVuSans.ttf"
  exit 1
fi
mkdir -p "$repo/models/fonts"
if ! cmp -s "$font" "$repo/models/fonts/DejaVuSans.ttf"; then
  cp "$font" "$repo/models/fonts/DejaVuSans.ttf"
fi
log "ready: font models/fonts/DejaVuSans.ttf"
nginx=$(command -v nginx || echo /usr/sbin/nginx)
log "ready: $("$nginx" -v 2>&1)"
