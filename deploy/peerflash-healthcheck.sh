#!/bin/sh
# Docker health check: healthy when the node's gRPC health service answers SERVING on its client
# address (`peerflash health`). The address and the security are read from the node's own command
# line: --listen HOST:PORT (a wildcard host is asked on loopback), and --certs DIR, the node's
# identity directory, whose client pair (the node's certificate) may ask the health service, or
# --insecure. PEERFLASH_HEALTH_TARGET and PEERFLASH_HEALTH_CERTS override them.
set -e
# The value of option $1 of the node's command line (--opt=VALUE or --opt VALUE), else empty.
node_option() {
  tr '\0' '\n' </proc/1/cmdline | sed -n -e "/^$1=/{s/^$1=//p;q;}" -e "/^$1\$/{n;p;q;}"
}
target="${PEERFLASH_HEALTH_TARGET:-$(node_option --listen)}"
target="${target:-127.0.0.1:7601}"
case "$target" in
  0.0.0.0:*) target="127.0.0.1:${target#0.0.0.0:}" ;;
  \[::\]:*) target="127.0.0.1:${target#\[::\]:}" ;;
esac
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
