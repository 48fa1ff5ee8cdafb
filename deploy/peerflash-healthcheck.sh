#!/bin/bash
# Docker health check. With an HTTP port (--http HOST:PORT on the node's command line) it asks
# GET /healthz over bash's /dev/tcp, without starting a JVM: healthy when the node process answers
# and its local flash has kept every fsync. Without one it falls back to `peerflash health` (the
# gRPC health service, with the node's own --certs or --insecure). PEERFLASH_HEALTH_TARGET and
# PEERFLASH_HEALTH_CERTS override the gRPC address and identity.
set -e
# The value of option $1 of the node's command line (--opt=VALUE or --opt VALUE), else empty.
node_option() {
  tr '\0' '\n' </proc/1/cmdline | sed -n -e "/^$1=/{s/^$1=//p;q;}" -e "/^$1\$/{n;p;q;}"
}
loopback() {
  case "$1" in
    0.0.0.0:*) echo "127.0.0.1:${1#0.0.0.0:}" ;;
    \[::\]:*) echo "127.0.0.1:${1#\[::\]:}" ;;
    *) echo "$1" ;;
  esac
}
http="$(node_option --http)"
if [ -n "$http" ]; then
  http="$(loopback "$http")"
  host="${http%:*}"
  port="${http##*:}"
  exec 3<>"/dev/tcp/$host/$port"
  printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
  IFS= read -r -t 15 status <&3
  case "$status" in
    *" 200 "*) exit 0 ;;
    *) cat <&3 >&2 || true; exit 1 ;;
  esac
fi
target="${PEERFLASH_HEALTH_TARGET:-$(node_option --listen)}"
target="$(loopback "${target:-127.0.0.1:7601}")"
certs="${PEERFLASH_HEALTH_CERTS:-$(node_option --certs)}"
if [ -n "$certs" ]; then
  set -- --certs "$certs"
elif tr '\0' '\n' </proc/1/cmdline | grep -qx -e '--insecure' -e '--insecure=true'; then
  set -- --insecure
else
  set --
fi
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx64m -Xss512k \
  -jar /opt/peerflash/peerflash.jar health --target "$target" "$@" >/dev/null
