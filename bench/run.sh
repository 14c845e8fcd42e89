#!/usr/bin/env bash
# Benchmark: throughput and p50/p99 latency of
#   direct      → a mock upstream,
#   mosaic      → the same upstream through `mosaic serve`,
#   nginx       → the same upstream through nginx configured for the same failover and to add
#                 the same headers as mosaic (Forwarded, X-Forwarded-For, X-Forwarded-Host and
#                 traceparent to the upstream; x-mosaic-provider and x-mosaic-request-id to the
#                 caller), so that the load generator and the upstream, which share the machine's
#                 cores with the proxy, parse the same bytes from both proxies,
#   nginx-bare  → the same upstream through nginx adding nothing (happy path only),
# on the happy path and in three failover scenarios (first provider refuses connections,
# answers 500, or is slower than the 200 ms per-try timeout). Also mosaic's resident memory
# idle and under load. Writes bench/RESULTS.md.
#
# The happy path is measured in BENCH_ROUNDS rounds of direct, mosaic, nginx, nginx-bare in turn, and each
# target's median round is reported: on a shared machine the background load drifts, and
# interleaving lets the drift hit both proxies alike instead of whichever ran second.
#
# Bounded in time: about 2½ minutes with the defaults. Everything runs on 127.0.0.1.
#
# Needs: oha (cargo install oha --version 1.16.0 --locked), nginx (apt-get install nginx-light),
#        python3. Knobs: BENCH_DURATION (5s per round), BENCH_ROUNDS (3),
#        BENCH_FAILOVER_DURATION (5s), BENCH_CONCURRENCY (32), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
FDUR=${BENCH_FAILOVER_DURATION:-5s}
CONC=${BENCH_CONCURRENCY:-32}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

[ -x "$OHA" ] || { echo "oha not found: cargo install oha --version 1.16.0 --locked" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx not found: apt-get install -y nginx-light" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -q -p mosaic-local -p mosaic-bench-upstream)
MOSAIC="$TARGET/release/mosaic"
MOCK="$TARGET/release/mock-upstream"

WORK=$(mktemp -d /tmp/mosaic-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # the master may remove its pid file between the test and the read
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

P_OK=$(free_port); P_BAD=$(free_port); P_SLOW=$(free_port); P_DOWN=$(free_port)
P_MOSAIC=$(free_port); P_NGINX=$(free_port); P_NGINX_BARE=$(free_port)

"$MOCK" "$P_OK" 200 0 >/dev/null & PIDS+=($!)
"$MOCK" "$P_BAD" 500 0 >/dev/null & PIDS+=($!)
"$MOCK" "$P_SLOW" 200 1000 >/dev/null & PIDS+=($!)
wait_port "$P_OK"; wait_port "$P_BAD"; wait_port "$P_SLOW"

cat >"$WORK/mosaic.toml" <<EOF
[server]
max_connections = 4096

[[providers]]
id = "ok"
base_url = "http://127.0.0.1:$P_OK"
allow_private = true

[[providers]]
id = "bad"
base_url = "http://127.0.0.1:$P_BAD"
allow_private = true

[[providers]]
id = "down"
base_url = "http://127.0.0.1:$P_DOWN"
allow_private = true

[[providers]]
id = "slow"
base_url = "http://127.0.0.1:$P_SLOW"
allow_private = true

[[routes]]
name = "happy"
match = { path = "/happy/{*rest}" }
providers = ["ok"]

[[routes]]
name = "refused"
match = { path = "/refused/{*rest}" }
providers = ["down", "ok"]

[[routes]]
name = "status500"
match = { path = "/5xx/{*rest}" }
providers = ["bad", "ok"]
retry = { on_status = [500, 502, 503, 504] }

[[routes]]
name = "timeout"
match = { path = "/timeout/{*rest}" }
providers = ["slow", "ok"]
timeout = { per_try_ms = 200, total_ms = 2000 }
EOF

{
nginx_conf_head "worker_processes auto;"
cat <<EOF
  upstream happy   { server 127.0.0.1:$P_OK; keepalive 64; }
  upstream refused { server 127.0.0.1:$P_DOWN max_fails=1 fail_timeout=5s; server 127.0.0.1:$P_OK backup; keepalive 64; }
  upstream s500    { server 127.0.0.1:$P_BAD max_fails=1 fail_timeout=5s;  server 127.0.0.1:$P_OK backup; keepalive 64; }
  upstream slow    { server 127.0.0.1:$P_SLOW max_fails=1 fail_timeout=5s; server 127.0.0.1:$P_OK backup; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGINX;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
$(nginx_same_headers)
    proxy_next_upstream error timeout http_500 http_502 http_503 http_504;
    proxy_next_upstream_tries 3;
    proxy_connect_timeout 200ms;
    proxy_read_timeout 200ms;
    location /happy/   { proxy_pass http://happy; }
    location /refused/ { proxy_pass http://refused; }
    location /5xx/     { proxy_pass http://s500; }
    location /timeout/ { proxy_pass http://slow; }
  }
  # the same proxying adding no header
  server {
    listen 127.0.0.1:$P_NGINX_BARE;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /happy/ { proxy_pass http://happy; }
  }
}
EOF
} >"$WORK/nginx.conf"

RUST_LOG=warn "$MOSAIC" serve --config "$WORK/mosaic.toml" --listen "127.0.0.1:$P_MOSAIC" >"$WORK/mosaic.log" 2>&1 & MOSAIC_PID=$!
PIDS+=("$MOSAIC_PID")
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx.out" 2>&1 & PIDS+=($!)
wait_port "$P_MOSAIC"; wait_port "$P_NGINX"; wait_port "$P_NGINX_BARE"
sleep 1
rss_kib() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }
# CPU time (user and system, in clock ticks) of processes, for CPU per request
ticks() { local t=0 p f; for p in "$@"; do f=($(cut -d' ' -f14,15 "/proc/$p/stat")); t=$((t + f[0] + f[1])); done; echo "$t"; }
NGINX_PIDS() { # the master and its workers
  local master d; master=$(cat "$WORK/nginx.pid"); echo "$master"
  for d in /proc/[0-9]*; do
    [ "$(awk '/^PPid:/ {print $2}' "$d/status" 2>/dev/null)" = "$master" ] && echo "${d#/proc/}"
  done
}
IDLE_RSS=$(rss_kib "$MOSAIC_PID" VmRSS)

run() { # name url duration
  "$OHA" -z "$3" -c "$CONC" -w --no-tui --output-format json "$2" >"$WORK/$1.json" 2>"$WORK/$1.err" || {
    echo "oha failed for $1: $(cat "$WORK/$1.err")" >&2; exit 1; }
  echo "  $1 done" >&2
}

echo "warming up" >&2
"$OHA" -z 2s -c "$CONC" --no-tui --output-format json "http://127.0.0.1:$P_MOSAIC/happy/x" >/dev/null
"$OHA" -z 2s -c "$CONC" --no-tui --output-format json "http://127.0.0.1:$P_NGINX/happy/x" >/dev/null
"$OHA" -z 2s -c "$CONC" --no-tui --output-format json "http://127.0.0.1:$P_NGINX_BARE/happy/x" >/dev/null
echo "measuring ($DUR happy path, $FDUR per failover scenario, $CONC connections)" >&2
MOSAIC_TICKS=0; NGINX_TICKS=0; NGINX_BARE_TICKS=0
for r in $(seq 1 "$ROUNDS"); do
  run "direct-$r"  "http://127.0.0.1:$P_OK/happy/x" "$DUR"
  T0=$(ticks "$MOSAIC_PID")
  run "mosaic-$r"  "http://127.0.0.1:$P_MOSAIC/happy/x" "$DUR"
  MOSAIC_TICKS=$(( MOSAIC_TICKS + $(ticks "$MOSAIC_PID") - T0 ))
  [ "$r" = 1 ] && LOAD_RSS=$(rss_kib "$MOSAIC_PID" VmRSS)
  T0=$(ticks $(NGINX_PIDS))
  run "nginx-$r"   "http://127.0.0.1:$P_NGINX/happy/x" "$DUR"
  NGINX_TICKS=$(( NGINX_TICKS + $(ticks $(NGINX_PIDS)) - T0 ))
  T0=$(ticks $(NGINX_PIDS))
  run "nginx-bare-$r" "http://127.0.0.1:$P_NGINX_BARE/happy/x" "$DUR"
  NGINX_BARE_TICKS=$(( NGINX_BARE_TICKS + $(ticks $(NGINX_PIDS)) - T0 ))
done
for s in refused 5xx timeout; do
  run "mosaic-$s" "http://127.0.0.1:$P_MOSAIC/$s/x" "$FDUR"
  run "nginx-$s"  "http://127.0.0.1:$P_NGINX/$s/x" "$FDUR"
done
PEAK_RSS=$(rss_kib "$MOSAIC_PID" VmHWM)
sleep 2
AFTER_RSS=$(rss_kib "$MOSAIC_PID" VmRSS)

WORK="$WORK" CONC="$CONC" DUR="$DUR" ROUNDS="$ROUNDS" FDUR="$FDUR" IDLE_RSS="$IDLE_RSS" LOAD_RSS="$LOAD_RSS" PEAK_RSS="$PEAK_RSS" \
AFTER_RSS="$AFTER_RSS" MOSAIC_TICKS="$MOSAIC_TICKS" NGINX_TICKS="$NGINX_TICKS" NGINX_BARE_TICKS="$NGINX_BARE_TICKS" HZ="$(getconf CLK_TCK)" OUT="$ROOT/bench/RESULTS.md" python3 "$ROOT/bench/summarize.py"
cat "$ROOT/bench/RESULTS.md"
