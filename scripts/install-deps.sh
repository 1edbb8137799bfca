#!/usr/bin/env bash
# Installs the Debian packages dmarc-collector needs to build, test and run its
# throwaway services.  Run as root (CI and the machines here are root); a no-op
# when everything is already installed.
#
# Cyrus IMAP, the second test server: Debian's cyrus-imapd Conflicts with every
# other imap-server, dovecot-imapd among them, so it cannot be installed next to
# Dovecot.  Its package holds only three programs (imapd, idled, squatter); the
# rest (master, the libraries, the tools) is cyrus-common, which installs fine.
# So cyrus-common and sasl2-bin (saslpasswd2) are installed, and cyrus-imapd's
# .deb of the very same version is unpacked, not installed, into $cyrus_root
# (tests/lib/cyrus.sh looks there; DC_CYRUS_ROOT overrides it).
set -euo pipefail
pkgs=(
  build-essential dpkg-dev cmake pkg-config clang libclang-rt-14-dev clang-format cppcheck scdoc
  libcurl4-openssl-dev libxml2-dev libxml2-utils zlib1g-dev libzip-dev libpq-dev
  libgmime-3.0-dev libc-ares-dev libpsl-dev libinih-dev libcmocka-dev libmicrohttpd-dev libsystemd-dev libmaxminddb-dev
  libjson-c-dev                   # SMTP TLS reports are JSON (parser/dc_tlsrpt.c)
  postgresql postgresql-client dovecot-imapd dnsmasq-base
  cyrus-common sasl2-bin
  libmaxmind-db-writer-perl       # writes the MaxMind-format test files (it_ipdb)
  prometheus                      # promtool, for it_metrics (its daemon is never started)
  openssl curl python3 python3-yaml zip gzip procps iproute2 time bc
  systemd man-db groff-base
  debhelper dpkg-dev fakeroot lintian pkgconf debootstrap
)
cyrus_root=${DC_CYRUS_ROOT:-/opt/dmarc-collector/cyrus-imapd}
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
cyrus_version() { dpkg-query -W -f='${Version}' cyrus-common 2>/dev/null; }
cyrus_ok() {  # the unpacked imapd matches the installed cyrus-common
  [ -x "$cyrus_root/usr/lib/cyrus/bin/imapd" ] && [ -n "$(cyrus_version)" ] \
    && [ "$(cat "$cyrus_root/VERSION" 2>/dev/null)" = "$(cyrus_version)" ]
}
if [ ${#missing[@]} -eq 0 ] && cyrus_ok; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run this script as root)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]:-(cyrus-imapd only)}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian starts installed daemons through invoke-rc.d; we start our own private
# instances, so forbid that (policy-rc.d exit 101) while installing.
had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ $had_policy = 0 ]; then rm -f /usr/sbin/policy-rc.d; fi
if ! cyrus_ok; then
  echo "install-deps: unpacking cyrus-imapd $(cyrus_version) into $cyrus_root" >&2
  dl=$(mktemp -d)
  chmod 755 "$dl"; chown _apt: "$dl" 2>/dev/null || true   # apt downloads as _apt
  (cd "$dl" && apt-get download -qq "cyrus-imapd=$(cyrus_version)" >/dev/null)
  rm -rf "$cyrus_root"; mkdir -p "$cyrus_root"
  dpkg-deb -x "$dl"/cyrus-imapd_*.deb "$cyrus_root"
  cyrus_version > "$cyrus_root/VERSION"
  rm -rf "$dl"
  cyrus_ok
fi
