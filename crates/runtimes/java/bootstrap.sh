#!/bin/sh
# Flint's launcher for the Java managed runtimes: starts the JVM given as $1 with the flags AWS's
# Java runtimes use (heap, metaspace and code cache sized from the function's memory: 85 %, 10 %
# and 5 % of it; serial GC; C1 only, for start-up), then Flint's runtime client. The JVM reads the
# function's JAVA_TOOL_OPTIONS itself, before the command line: so that those options win, as
# they do on Lambda, a default is left out when JAVA_TOOL_OPTIONS sets the same thing.
java="$1"
shift
mb="${AWS_LAMBDA_FUNCTION_MEMORY_SIZE:-128}"
case "$mb" in
    ''|*[!0-9]*) mb=128 ;;
esac
kb=$((mb * 1024))
opts="${JAVA_TOOL_OPTIONS:-}"
set -- -cp "${LAMBDA_RUNTIME_DIR:-/var/runtime}/java/classes" flint.lambda.Main "$@"
case "$opts" in
    *TieredCompilation*|*TieredStopAtLevel*) ;;
    *) set -- -XX:+TieredCompilation -XX:TieredStopAtLevel=1 "$@" ;;
esac
case "$opts" in
    *-XX:+Use*GC*) ;;
    *) set -- -XX:+UseSerialGC "$@" ;;
esac
case "$opts" in
    *ReservedCodeCacheSize*) ;;
    *) set -- -XX:ReservedCodeCacheSize=$(((kb * 5 + 99) / 100))k "$@" ;;
esac
case "$opts" in
    *MaxMetaspaceSize*) ;;
    *) set -- -XX:MaxMetaspaceSize=$(((kb * 10 + 99) / 100))k "$@" ;;
esac
case "$opts" in
    *-Xmx*|*MaxHeapSize*|*MaxRAMPercentage*) ;;
    *) set -- -XX:MaxHeapSize=$(((kb * 85 + 99) / 100))k "$@" ;;
esac
exec "$java" -Xshare:auto "$@"
