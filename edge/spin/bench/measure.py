#!/usr/bin/env python3
"""Measure the Mosaic Edge Spin component under wasmtime serve (via scripts/spin-serve).

Usage: python3 edge/spin/bench/measure.py path/to/mosaic_spin.wasm   (N=requests per row, default 300)
"""
import http.client, http.server, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
COMP = sys.argv[1]
N = int(os.environ.get("N", "300"))

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = b"hello from upstream\n" * 10
        self.send_response(200)
        self.send_header("content-length", str(len(b)))
        self.send_header("cache-control", "max-age=600")
        self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass

up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=up.serve_forever, daemon=True).start()
UP = up.server_address[1]
CFG = f'''[server]
admin_token = "secret:MOSAIC_TEST_ADMIN"
[[providers]]
id = "up"
base_url = "http://127.0.0.1:{UP}"
allow_private = true
[[routes]]
name = "proxy"
match = {{ path = "/p/{{*rest}}" }}
providers = ["up"]
[[routes]]
name = "cached"
match = {{ methods = ["GET"], path = "/c/{{*rest}}" }}
providers = ["up"]
cache = {{ enabled = true }}
'''

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(data, extra, cache=True):
    port = free_port()
    os.makedirs(f"{data}/default", exist_ok=True)
    open(f"{data}/default/mosaic%3Aconfig", "w").write(CFG)
    args = [f"{REPO}/scripts/spin-serve", "--var", "mosaic_test_admin=tok", "--log", f"{data}/log", COMP, str(port), data, "--"] + extra
    if not cache: args += ["-C", "cache=n"]
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # wait for first 200 on health
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/_mosaic/health")
            if c.getresponse().status == 200: break
        except OSError: time.sleep(0.002)
    return p, port, (time.perf_counter() - t0) * 1000

def stop(p):
    p.send_signal(signal.SIGTERM); p.wait(timeout=10)

def bench(port, path, n=N, keep=False):
    ts = []
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(n):
        if not keep: c = http.client.HTTPConnection("127.0.0.1", port)
        t = time.perf_counter(); c.request("GET", path.replace("{i}", str(i))); r = c.getresponse(); r.read()
        ts.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, (path, r.status)
    ts.sort()
    return f"p50 {ts[len(ts)//2]:.2f} ms, p90 {ts[int(len(ts)*.9)]:.2f}, p99 {ts[int(len(ts)*.99)]:.2f}"

d = tempfile.mkdtemp()
# cold starts: spin-serve total (compose cached) and wasmtime compile cache off/on
for label, cache in (("compile cache off (-C cache=n)", False), ("compile cache warm", True)):
    xs = []
    for i in range(5):
        p, port, ms = start(d, ["--max-instance-reuse-count", "1"], cache); stop(p); xs.append(ms)
    print(f"launch -> first 200 via spin-serve, {label}: median {statistics.median(xs):.0f} ms ({min(xs):.0f}-{max(xs):.0f})")
for run, (label, extra) in enumerate((("fresh instance per request (--max-instance-reuse-count 1)", ["--max-instance-reuse-count", "1"]), ("instance reuse (wasmtime default)", []))):
    p, port, _ = start(d, extra)
    print(f"== {label}")
    print("  GET /_mosaic/health      ", bench(port, "/_mosaic/health"))
    print("  GET /p/x (proxied, no cache)", bench(port, "/p/x"))
    bench(port, "/c/warm", 1)
    print("  GET /c/warm (KV cache hit) ", bench(port, "/c/warm"))
    print("  GET /c/{i} (miss + KV put) ", bench(port, f"/c/r{run}m{{i}}"))
    stop(p)
shutil.rmtree(d, ignore_errors=True)
