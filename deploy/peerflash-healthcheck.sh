#!/bin/sh
# Docker health check: healthy when the node answers a status call on its client address, read
# from the node's own command line (--listen HOST:PORT or --listen=HOST:PORT; a wildcard host is
# asked on loopback). PEERFLASH_HEALTH_TARGET overrides the address.
set -e
target="${PEERFLASH_HEALTH_TARGET:-}"
if [ -z "$target" ]; then
  target=$(tr '\0' '\n' </proc/1/cmdline | sed -n -e '/^--listen=/{s/^--listen=//p;q;}' \
    -e '/^--listen$/{n;p;q;}')
fi
target="${target:-127.0.0.1:7601}"
case "$target" in
  0.0.0.0:*) target="127.0.0.1:${target#0.0.0.0:}" ;;
  \[::\]:*) target="127.0.0.1:${target#\[::\]:}" ;;
esac
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx64m -Xss512k \
  -jar /opt/peerflash/peerflash.jar status --target "$target" >/dev/null
