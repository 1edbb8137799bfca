#!/usr/bin/env bash
# Installs the Debian packages dmarc-collector needs to build, test and run its
# throwaway services.  Run as root (CI and the machines here are root); a no-op
# when everything is already installed.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libcurl4-openssl-dev libxml2-dev libxml2-utils zlib1g-dev libzip-dev libpq-dev
  libgmime-3.0-dev libc-ares-dev libpsl-dev libinih-dev libcmocka-dev
  postgresql postgresql-client dovecot-imapd dnsmasq-base
  openssl curl python3 python3-yaml zip gzip procps time bc
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run this script as root)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian starts installed daemons through invoke-rc.d; we start our own private
# instances, so forbid that (policy-rc.d exit 101) while installing.
had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ $had_policy = 0 ]; then rm -f /usr/sbin/policy-rc.d; fi
