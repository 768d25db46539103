#!/bin/bash
# Profile Flint's own CPU during a cpu_per_invoke.py run: perf attaches to the server 5 s in,
# samples for 3 s (cpu-clock: this VM has no PMU), then prints Flint's top symbols.
#
#   scripts/profile_invoke.sh FLINT_BINARY OUT_PREFIX [cpu_per_invoke.py options...]
#   e.g. scripts/profile_invoke.sh target/release/flint /tmp/p6 --connections 1 --payload-bytes 6000000
#
# Writes OUT_PREFIX.txt (the run's figures), OUT_PREFIX.data (perf's; `perf report -i` it with
# --call-graph for callers) and OUT_PREFIX.top.
set -euo pipefail
BIN=$(realpath "$1"); OUT=$2; shift 2
cd "$(dirname "$0")/.."
.venv/bin/python scripts/cpu_per_invoke.py "$BIN" target/fixtures/release/bootstrap 10 "$@" > "$OUT.txt" 2>&1 &
RUN=$!
sleep 5
PID=$(pgrep -n -f "^$BIN serve")
perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$PID" -o "$OUT.data" -- sleep 3 > /dev/null 2>&1
wait $RUN
perf report -i "$OUT.data" --no-children --sort comm,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -30 > "$OUT.top" || true
tail -1 "$OUT.txt"
cat "$OUT.top"
