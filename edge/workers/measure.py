#!/usr/bin/env python3
"""Measure the Workers host under `wrangler dev --local` (workerd) on this machine.

    python3 edge/workers/measure.py [--requests 2000]

Needs a built worker (edge/workers/build, `worker-build --release`) and the pinned tools
(`eval "$(scripts/install-workers-tools)"` sets $WRANGLER). Prints:

- cold start: spawn `wrangler dev` -> first 200 from /_mosaic/health, and the latency of the
  first proxied request of the fresh isolate;
- wall time per proxied request (sequential, keep-alive client, a local mock upstream that
  answers at once), median and p99;
- CPU time of the workerd processes per request (utime + stime from /proc, before and after
  the run), for proxied requests and for /_mosaic/health (no subrequest). workerd does not
  report a worker's CPU time locally, so this is an upper bound of what Cloudflare bills: it
  also counts workerd's own HTTP parsing, the subrequest's socket work and the log lines.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "edge/workers/build")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms
    disable_nagle_algorithm = True

    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def toml_str(s):
    return json.dumps(s)


def proc_cpu(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def workerd_pids(root):
    out = subprocess.run(["ps", "-e", "-o", "pid=,pgid=,comm="], capture_output=True, text=True).stdout
    return [int(l.split()[0]) for l in out.splitlines() if int(l.split()[1]) == root and "workerd" in l]


def run(conn, path, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"{path}: HTTP {r.status}")
        lat.append(time.perf_counter() - t)
    return lat


def serve_and_measure(wrangler, main_js, vars_, secrets, paths, requests):
    """Starts wrangler dev for `main_js`, returns cold start, first-request latency and, per
    (name, path), wall and workerd CPU per request."""
    d = tempfile.mkdtemp(prefix="mosaic-measure-")
    with open(os.path.join(d, "wrangler.toml"), "w") as f:
        f.write(
            f'name = "mosaic-measure"\nmain = {toml_str(main_js)}\n'
            'compatibility_date = "2026-04-20"\n\n[[kv_namespaces]]\nbinding = "MOSAIC_KV"\n'
            'id = "00000000000000000000000000000001"\npreview_id = "00000000000000000000000000000002"\n\n[vars]\n'
            + "".join(f"{k} = {toml_str(v)}\n" for k, v in vars_.items())
        )
    with open(os.path.join(d, ".dev.vars"), "w") as f:
        f.write("".join(f"{k}={toml_str(v)}\n" for k, v in secrets.items()))
    port, inspector = free_port(), free_port()
    env = dict(os.environ, WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false")
    log = open(os.path.join(d, "wrangler.log"), "w")
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [wrangler, "dev", "--local", "--ip", "127.0.0.1", "--port", str(port), "--inspector-port",
         str(inspector), "--persist-to", os.path.join(d, "kv"), "--config", os.path.join(d, "wrangler.toml"),
         "--show-interactive-dev-session=false"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=d)
    try:
        first_path = paths[0][1]
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("GET", first_path)
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    break
            except OSError:
                time.sleep(0.02)
            if time.perf_counter() - t0 > 120:
                sys.exit("wrangler dev did not answer in 120 s")
        cold = time.perf_counter() - t0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        run(conn, first_path, 200)
        pids = workerd_pids(p.pid)
        out = {"cold_start_spawn_to_first_200_ms": round(cold * 1000), "workerd_processes": len(pids)}
        for name, path in paths:
            c0 = proc_cpu(pids)
            lat = run(conn, path, requests)
            c1 = proc_cpu(pids)
            lat.sort()
            out[name] = {
                "requests": requests,
                "wall_median_ms": round(statistics.median(lat) * 1000, 3),
                "wall_p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 3),
                "workerd_cpu_per_request_ms": round((c1 - c0) / requests * 1000, 3),
            }
        return out
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=20)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--no-access-log", action="store_true", help="MOSAIC_ACCESS_LOG=off (no per-request line)")
    ap.add_argument("--baseline", help="build dir of a minimal Rust fetch worker with a /fetch?url= endpoint "
                    "(the toolchain's hello worker) to measure the same path without Mosaic")
    args = ap.parse_args()
    wrangler = os.environ.get("WRANGLER", os.path.join(REPO, "node_modules/.bin/wrangler"))
    mock_port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", mock_port), Ok)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cfg = (
        '[server]\nadmin_token = "secret:MOSAIC_TEST_ADMIN"\n\n'
        f'[[providers]]\nid = "up"\nbase_url = "http://127.0.0.1:{mock_port}"\nallow_private = true\n\n'
        '[[routes]]\nname = "r"\nmatch = { path = "/p/{*rest}" }\nproviders = ["up"]\n'
    )
    result = {"load_average_before": os.getloadavg()}
    result["mosaic"] = serve_and_measure(
        wrangler, os.path.join(BUILD, "worker/shim.mjs"), {"MOSAIC_CONFIG": cfg, **({"MOSAIC_ACCESS_LOG": "off"} if args.no_access_log else {})},
        {"MOSAIC_TEST_ADMIN": "measure"},
        [("proxied", "/p/x"), ("health", "/_mosaic/health")], args.requests)
    if args.baseline:
        result["baseline"] = serve_and_measure(
            wrangler, os.path.join(args.baseline, "worker/shim.mjs"), {"GREETING": "hi"}, {},
            [("proxied", f"/fetch?url=http://127.0.0.1:{mock_port}/x"), ("info", "/info")], args.requests)
    result["load_average_after"] = os.getloadavg()
    srv.shutdown()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
