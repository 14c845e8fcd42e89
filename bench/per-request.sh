#!/usr/bin/env bash
# Instructions per proxied request (callgrind), mosaic and nginx (adding no header, and adding
# the headers mosaic adds: see nginx_same_headers in bench/lib.sh), on the happy path of
# bench/run.sh: each proxy runs under valgrind with one worker, serves 200 requests to warm up,
# then the count is zeroed, N requests (BENCH_REQUESTS, 5000) are sent with oha and the count
# is dumped and divided by N. User-space instructions only (the kernel's share is the same
# system calls for both: one receive and one send per side). Unlike req/s, the figure does
# not move with the machine's load. Takes about a minute.
#
# Needs: valgrind (apt-get install valgrind), oha, nginx (see bench/README.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_REQUESTS:-5000}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }
[ -x "$OHA" ] || { echo "oha not found: cargo install oha --version 1.16.0 --locked" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx not found: apt-get install -y nginx-light" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -q -p mosaic-local -p mosaic-bench-upstream)
MOSAIC="$TARGET/release/mosaic"
MOCK="$TARGET/release/mock-upstream"

WORK=$(mktemp -d /tmp/mosaic-per-request.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

P_OK=$(free_port); P_MOSAIC=$(free_port); P_NGINX=$(free_port); P_NGINX_SAME=$(free_port)
"$MOCK" "$P_OK" 200 0 >/dev/null & PIDS+=($!)
wait_port "$P_OK"

cat >"$WORK/mosaic.toml" <<EOF
[server]
workers = 1

[[providers]]
id = "ok"
base_url = "http://127.0.0.1:$P_OK"
allow_private = true

[[routes]]
name = "happy"
match = { path = "/happy/{*rest}" }
providers = ["ok"]
EOF
{
nginx_conf_head "worker_processes 1;
master_process off;"
cat <<EOF
  upstream happy { server 127.0.0.1:$P_OK; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGINX;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /happy/ { proxy_pass http://happy; }
  }
  server {
    listen 127.0.0.1:$P_NGINX_SAME;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
$(nginx_same_headers)
    location /happy/ { proxy_pass http://happy; }
  }
}
EOF
} >"$WORK/nginx.conf"

count() { # name port command...
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.out" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  "$OHA" -n 200 -c 4 --no-tui "http://127.0.0.1:$port/happy/x" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  "$OHA" -n "$N" -c 4 --no-tui "http://127.0.0.1:$port/happy/x" >/dev/null
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -INT "$pid" 2>/dev/null || true
  sleep 2
  kill "$pid" 2>/dev/null || true
  # the dump taken after zeroing is the one with the highest part number
  local dump total
  dump=$(ls "$WORK/$name.out".* | awk -F. '{print $NF, $0}' | sort -n | tail -1 | cut -d' ' -f2-)
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$name: $((total / N)) instructions per proxied request ($total over $N)"
}

RUST_LOG=warn count mosaic "$P_MOSAIC" "$MOSAIC" serve --config "$WORK/mosaic.toml" --listen "127.0.0.1:$P_MOSAIC"
count nginx-adding-no-header "$P_NGINX" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/nginx"
# the same nginx again (one worker serves both ports), counted on its like-for-like port
count nginx-adding-the-same-headers "$P_NGINX_SAME" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/nginx"
