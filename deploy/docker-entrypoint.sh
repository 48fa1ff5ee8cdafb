#!/bin/sh
# Runs the PeerFlash command line (`node ...` by default) as PID 1 of the container: exec, so
# SIGTERM from `docker stop` goes straight to the JVM, whose shutdown hook stops the node cleanly.
# JAVA_OPTS holds the JVM options.
set -e
# shellcheck disable=SC2086  # JAVA_OPTS is a list of words
exec java $JAVA_OPTS -jar /opt/peerflash/peerflash.jar "$@"
