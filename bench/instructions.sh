#!/usr/bin/env bash
# bench/instructions.sh — instructions per core operation, counted by callgrind (load-independent).
# 1,000 routes, 10 providers, priority strategy. Prints a Markdown table.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
cargo build --release -p mosaic-core --example instructions >/dev/null 2>&1
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/examples/instructions
N=10000
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" "$2" 2>&1 | grep -o 'refs: *[0-9,]*' | tr -dc '0-9'; }
echo "| operation (1,000 routes, 10 providers) | instructions per operation |"
echo "|---|---:|"
for mode in lookup decision call request; do
  base=$(count "$mode" 0); run=$(count "$mode" "$N")
  echo "| $mode | $(( (run - base) / N )) |"
done
