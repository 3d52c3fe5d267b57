#!/usr/bin/env bash
# Installs the server software the interop suite runs (Debian packages only) and leaves none
# of it running or enabled: while apt installs, a policy-rc.d forbids starting services, and
# afterwards every unit the packages ship is disabled and stopped. Prints what it installed.
#   tools/interop/deps.sh [package...]      (default: all of PACKAGES)
set -euo pipefail
PACKAGES=(apache2 lighttpd lighttpd-mod-deflate caddy h2o nghttp2-server squid tinyproxy microsocks
  dante-server python3-httpbin gunicorn curl openssl)
SERVICES=(apache2 lighttpd caddy h2o squid tinyproxy danted)
(($# > 0)) || set -- "${PACKAGES[@]}"
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
echo "interop: installing ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for s in "${SERVICES[@]}"; do
  if command -v systemctl >/dev/null 2>&1; then "${sudo[@]}" systemctl disable --now "$s" >/dev/null 2>&1 || true; fi
  "${sudo[@]}" service "$s" stop >/dev/null 2>&1 || true
done
