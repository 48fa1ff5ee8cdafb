#!/usr/bin/env bash
# Runs a benchmark class of the node's test sources with their classpath. One reactor build: the
# node's classpath then names the sibling modules' fresh classes, so this works on a fresh clone
# without installing them first. Usage: node/bench/run-class.sh CLASS [args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
mvn -B -q -ntp -pl node -am test-compile dependency:build-classpath -DskipTests \
  -Dspotless.check.skip=true -Dmdep.outputFile=target/bench.classpath -Dmdep.includeScope=test
class=$1
shift
exec java -cp "node/target/test-classes:node/target/classes:$(cat node/target/bench.classpath)" \
  "$class" "$@"
