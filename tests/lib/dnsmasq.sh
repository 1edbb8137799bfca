# tests/lib/dnsmasq.sh - a private dnsmasq on a loopback port, for the resolve
# tests and benchmark.  Source it, then:
#   dc_dns_start DIR [RECORDS_FILE]   start dnsmasq in DIR (created) answering
#                                     only from RECORDS_FILE (dnsmasq conf lines:
#                                     host-record=, ptr-record=, address=, ...);
#                                     exports DC_DNS_PORT, DC_DNS_SERVER=127.0.0.1:PORT
#   dc_dns_stop [DIR]                 stop it (DIR is left for the caller)
#   dc_dns_blackhole_start DIR        a UDP+TCP port that accepts and never
#                                     answers; exports DC_DNS_BLACKHOLE=127.0.0.1:PORT
#   dc_dns_blackhole_stop [DIR]
# The instance reads no /etc/resolv.conf, no /etc/hosts, forwards nothing, and
# is authoritative (NXDOMAIN, not REFUSED) for in-addr.arpa, ip6.arpa and the
# test domains example.com, example.net, example.org.  As root it drops
# privileges to nobody (dnsmasq's default) after binding the port.

dc_dns_freeport() {  # a port free for both UDP and TCP on 127.0.0.1
  python3 - <<'PY'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close(); continue
    print(port); break
PY
}

dc_dns_start() {
  local dir=$1 records=${2:-} port bin try
  bin=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
  [ -x "$bin" ] || { echo "dnsmasq.sh: dnsmasq not found (run scripts/install-deps.sh)" >&2; return 1; }
  mkdir -p "$dir"
  chmod 755 "$dir"
  # The port can be taken between choosing and binding it (tests run in
  # parallel): try a few.
  for try in 1 2 3 4 5; do
    port=$(dc_dns_freeport) || return 1
    {
      echo "port=$port"
      echo "listen-address=127.0.0.1"
      echo "bind-interfaces"
      echo "no-resolv"
      echo "no-hosts"
      echo "no-poll"
      echo "local=/in-addr.arpa/"
      echo "local=/ip6.arpa/"
      echo "local=/example.com/"
      echo "local=/example.net/"
      echo "local=/example.org/"
      echo "pid-file=$dir/dnsmasq.pid"
      echo "log-facility=$dir/dnsmasq.log"
      if [ -n "$records" ]; then echo "conf-file=$records"; fi
    } > "$dir/dnsmasq.conf"
    # dnsmasq returns once the child has bound the port (or failed).
    if "$bin" --conf-file="$dir/dnsmasq.conf" >"$dir/start.log" 2>&1; then
      export DC_DNS_PORT=$port DC_DNS_SERVER=127.0.0.1:$port DC_DNS_DIR=$dir
      return 0
    fi
    if [ "$try" -lt 5 ] && grep -qs 'Address already in use' "$dir/start.log" "$dir/dnsmasq.log"; then
      continue
    fi
    break
  done
  cat "$dir/start.log" "$dir/dnsmasq.log" >&2 2>/dev/null
  return 1
}

dc_dns_stop() {
  local dir=${1:-$DC_DNS_DIR} pid
  [ -n "$dir" ] && [ -f "$dir/dnsmasq.pid" ] || return 0
  pid=$(cat "$dir/dnsmasq.pid")
  # dnsmasq leaves its pid file behind: check the pid is still dnsmasq.
  if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dnsmasq ]; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/dnsmasq.pid"
  return 0
}

dc_dns_blackhole_start() {
  local dir=$1 port
  mkdir -p "$dir"
  rm -f "$dir/blackhole.ready"
  port=$(dc_dns_freeport) || return 1
  # Bound sockets that are never read: queries are neither answered nor
  # refused (no ICMP port unreachable), exactly like a dead server.
  python3 -c '
import socket, sys, time
p = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
t = socket.socket(); t.bind(("127.0.0.1", p)); t.listen(1)
open(sys.argv[2], "w").write("ready\n")
time.sleep(86400)' "$port" "$dir/blackhole.ready" &
  echo $! > "$dir/blackhole.pid"
  local i
  for i in $(seq 1 100); do [ -f "$dir/blackhole.ready" ] && break; sleep 0.05; done
  [ -f "$dir/blackhole.ready" ] || { echo "dnsmasq.sh: black hole did not start" >&2; return 1; }
  export DC_DNS_BLACKHOLE=127.0.0.1:$port DC_DNS_BLACKHOLE_DIR=$dir
}

dc_dns_blackhole_stop() {
  local dir=${1:-$DC_DNS_BLACKHOLE_DIR}
  [ -n "$dir" ] && [ -f "$dir/blackhole.pid" ] || return 0
  kill "$(cat "$dir/blackhole.pid")" 2>/dev/null || true
  rm -f "$dir/blackhole.pid"
  return 0
}
