"""Turns the oha JSON reports of bench/run.sh into bench/RESULTS.md."""

import json
import os
import platform
import subprocess
from datetime import datetime, timezone

work = os.environ["WORK"]


def load(name):
    with open(os.path.join(work, name + ".json")) as f:
        d = json.load(f)
    codes = d.get("statusCodeDistribution", {}) or {}
    errors = d.get("errorDistribution", {}) or {}
    ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
    total = sum(codes.values()) + sum(errors.values())
    p = d.get("latencyPercentiles", {}) or {}
    return {
        "rps": d["summary"]["requestsPerSec"],
        "p50": (p.get("p50") or 0.0) * 1e6,
        "p99": (p.get("p99") or 0.0) * 1e6,
        "ok": ok,
        "total": total,
        "success": 100.0 * ok / total if total else 0.0,
    }


def row(label, r):
    return f"| {label} | {r['rps']:,.0f} | {r['p50']:,.0f} | {r['p99']:,.0f} | {r['success']:.2f} % ({r['ok']:,}/{r['total']:,}) |"


rounds = int(os.environ.get("ROUNDS", "1"))


def median_round(target):
    """The target's round with the median throughput, and every round's throughput."""
    rs = [load(f"{target}-{i}") for i in range(1, rounds + 1)]
    by_rps = sorted(rs, key=lambda r: r["rps"])
    m = dict(by_rps[len(by_rps) // 2])
    # p50 as the median of the rounds' p50s, CPU over all requests of all rounds
    m["p50"] = sorted(r["p50"] for r in rs)[len(rs) // 2]
    m["all_total"] = sum(r["total"] for r in rs)
    m["rounds"] = [r["rps"] for r in rs]
    return m


direct, mosaic, nginx = median_round("direct"), median_round("mosaic"), median_round("nginx")
bare = median_round("nginx-bare")
lines = []
cpu = "unknown CPU"
try:
    cpu = next(
        l.split(":", 1)[1].strip()
        for l in open("/proc/cpuinfo")
        if l.startswith("model name")
    )
except Exception:
    pass
cores = os.cpu_count()
nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
try:
    load_avg = open("/proc/loadavg").read().split()[:3]
except Exception:
    load_avg = ["?", "?", "?"]
lines.append("# Benchmark: mosaic vs nginx vs direct")
lines.append("")
lines.append(
    f"`bench/run.sh`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu}, {cores} cores shared by the "
    f"load generator (oha, {os.environ['CONC']} connections, keep-alive), the proxy and the mock upstream; "
    f"{nginx_v}, `worker_processes auto`, access log off, once adding the headers mosaic adds "
    f"(Forwarded, X-Forwarded-For, X-Forwarded-Host, traceparent upstream; x-mosaic-provider, "
    f"x-mosaic-request-id to the caller: the load generator and the upstream share the cores and "
    f"parse those bytes) and once adding none; mosaic release build, `RUST_LOG=warn` "
    f"(no per-request log line, like nginx with `access_log off`). Happy path: {rounds} rounds of "
    f"{os.environ['DUR']} per target, the targets in turn, each target's median round shown; "
    f"failover scenarios {os.environ['FDUR']} each. Latencies in µs. Load average at the end: "
    f"{' '.join(load_avg)} — numbers taken on a busy machine vary from run to run; compare rows of one run."
)
lines.append("")
lines.append("## Happy path")
lines.append("")
lines.append("| target | req/s | p50 µs | p99 µs | success |")
lines.append("|---|---:|---:|---:|---:|")
lines.append(row("direct to the mock upstream", direct))
lines.append(row("through mosaic", mosaic))
lines.append(row("through nginx, adding the same headers", nginx))
lines.append(row("through nginx, adding no header", bare))
lines.append("")
fmt_rounds = lambda r: ", ".join(f"{x:,.0f}" for x in r["rounds"])
lines.append(
    f"Every round's req/s, in order: direct {fmt_rounds(direct)}; mosaic {fmt_rounds(mosaic)}; "
    f"nginx {fmt_rounds(nginx)}; nginx adding no header {fmt_rounds(bare)}. p50 is the median of "
    f"the rounds' p50s."
)
lines.append("")
added_m = mosaic["p50"] - direct["p50"]
added_n = nginx["p50"] - direct["p50"]
added_b = bare["p50"] - direct["p50"]
lines.append(
    f"Added p50 latency over direct: mosaic {added_m:,.0f} µs, nginx {added_n:,.0f} µs "
    f"(difference {added_m - added_n:+,.0f} µs), nginx adding no header {added_b:,.0f} µs "
    f"(difference {added_m - added_b:+,.0f} µs). Throughput mosaic/nginx: "
    f"{mosaic['rps'] / nginx['rps']:.2f}; mosaic/nginx adding no header: {mosaic['rps'] / bare['rps']:.2f}."
)
hz = float(os.environ.get("HZ", "100"))


def cpu_per_request(ticks, r):
    return float(os.environ[ticks]) / hz / r["all_total"] * 1e6 if r["all_total"] else 0.0


cpu_m, cpu_n = cpu_per_request("MOSAIC_TICKS", mosaic), cpu_per_request("NGINX_TICKS", nginx)
cpu_b = cpu_per_request("NGINX_BARE_TICKS", bare)
lines.append("")
lines.append(
    f"CPU per proxied request (user + system time of the proxy's processes over its run, divided by "
    f"the requests it answered; less sensitive to the machine's load than req/s): mosaic {cpu_m:.1f} µs, "
    f"nginx {cpu_n:.1f} µs, nginx adding no header {cpu_b:.1f} µs."
)
lines.append("")
lines.append(
    f"The same two goals against nginx adding no header (less work than mosaic's): throughput "
    f"≥ {'met' if mosaic['rps'] >= bare['rps'] else 'not met'}, p50 added latency within 50 µs "
    f"{'met' if added_m - added_b <= 50 else 'not met'}."
)
lines.append("")
lines.append("## Failover (first provider broken, second healthy)")
lines.append("")
lines.append("| scenario | mosaic req/s | mosaic p50 µs | mosaic p99 µs | mosaic success | nginx req/s | nginx p50 µs | nginx p99 µs | nginx success |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
names = {
    "refused": "connection refused",
    "5xx": "answers 500",
    "timeout": "slower than the 200 ms per-try timeout",
}
for s, label in names.items():
    m, n = load("mosaic-" + s), load("nginx-" + s)
    lines.append(
        f"| {label} | {m['rps']:,.0f} | {m['p50']:,.0f} | {m['p99']:,.0f} | {m['success']:.2f} % | "
        f"{n['rps']:,.0f} | {n['p50']:,.0f} | {n['p99']:,.0f} | {n['success']:.2f} % |"
    )
lines.append("")
lines.append(
    "Both fail over per request and then stop sending to the broken upstream (mosaic: circuit "
    "breaker, 5 failures then open 5 s doubling; nginx: `max_fails=1 fail_timeout=5s` with the "
    "healthy server as `backup`)."
)
lines.append("")
kib = lambda k: int(os.environ[k]) / 1024.0
lines.append("## mosaic resident memory")
lines.append("")
lines.append("| when | RSS |")
lines.append("|---|---:|")
lines.append(f"| idle after start | {kib('IDLE_RSS'):.1f} MiB |")
lines.append(f"| right after the first happy-path round | {kib('LOAD_RSS'):.1f} MiB |")
lines.append(f"| peak over all runs (VmHWM) | {kib('PEAK_RSS'):.1f} MiB |")
lines.append(f"| idle again, 2 s after the last run | {kib('AFTER_RSS'):.1f} MiB |")
lines.append("")
goals = [
    ("mosaic throughput ≥ nginx's (adding the same headers)", mosaic["rps"] >= nginx["rps"]),
    ("p50 added latency within 50 µs of nginx's (adding the same headers)", added_m - added_n <= 50),
    (
        "all failover scenarios at 100 % success",
        all(load("mosaic-" + s)["success"] == 100.0 for s in names),
    ),
    ("resident memory under load ≤ 64 MiB", kib("PEAK_RSS") <= 64),
    ("idle resident memory ≤ 20 MiB", kib("IDLE_RSS") <= 20),
]
lines.append("## Goals")
lines.append("")
for g, met in goals:
    lines.append(f"- [{'x' if met else ' '}] {g}")
lines.append("")
with open(os.environ["OUT"], "w") as f:
    f.write("\n".join(lines))
