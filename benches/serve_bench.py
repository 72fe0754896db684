#!/usr/bin/env python3
"""Time to first byte and page weight of the main pages of `onboard serve`.

Starts the real server on a loopback port over a run directory (e.g. the 20k demo:
`onboard demo --out demo-out`), signs in one user per role, requests each main page
and API endpoint N times and prints the median and 95th-percentile time to first byte,
the median total time, and the page weight (bytes of the HTML or JSON; the pages load
nothing else but /static/app.css, counted once; charts are inline SVG).

    python3 benches/serve_bench.py --onboard target/debug/onboard --run demo-out [--repeat 20]
"""
import argparse
import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

PASSWORD = "bench-password-not-secret"


def hash_password(onboard):
    out = subprocess.run([onboard, "serve", "--hash-password"], input=PASSWORD + "\n",
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def write_ics(run, onboard, practice):
    h = hash_password(onboard)
    base = open(os.path.join(run, "ics.yaml")).read()
    text = base + (
        "serve:\n  users:\n"
        f"    - {{ id: clin, role: clinician, practices: [{practice}], password_hash: \"{h}\" }}\n"
        f"    - {{ id: comm, role: commissioner, password_hash: \"{h}\" }}\n"
        f"    - {{ id: admin, role: admin, password_hash: \"{h}\" }}\n")
    fd, path = tempfile.mkstemp(suffix=".yaml", dir=run)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def request(port, method, path, cookie=None, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = cookie
    t0 = time.perf_counter()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    ttfb = time.perf_counter() - t0
    data = r.read()
    total = time.perf_counter() - t0
    c.close()
    return r, data, ttfb, total


def sign_in(port, user):
    r, data, _, _ = request(port, "GET", "/login")
    cookie = r.getheader("Set-Cookie").split(";")[0]
    token = cookie.split("=", 1)[1]
    body = urllib.parse.urlencode({"csrf": token, "user": user, "password": PASSWORD})
    r, _, _, _ = request(port, "POST", "/login", cookie, body,
                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 303, f"sign-in of {user}: {r.status}"
    return [c for c in r.headers.get_all("Set-Cookie") if c.startswith("onboard_session=")][0].split(";")[0]


def wait_ready(port, proc, limit=300):
    start = time.time()
    while time.time() - start < limit:
        if proc.poll() is not None:
            sys.exit(f"onboard serve exited with {proc.returncode}")
        try:
            r, _, _, _ = request(port, "GET", "/healthz")
            if r.status == 200:
                return time.time() - start
        except OSError:
            time.sleep(0.2)
    sys.exit("onboard serve did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onboard", default="target/debug/onboard")
    ap.add_argument("--run", default="demo-out")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--port", type=int, default=18481)
    ap.add_argument("--practice", default="F81001")
    a = ap.parse_args()
    ics = write_ics(a.run, a.onboard, a.practice)
    proc = subprocess.Popen([a.onboard, "serve", "--ics", ics, "--out", a.run,
                             "--listen", f"127.0.0.1:{a.port}"], stderr=subprocess.PIPE, text=True)
    try:
        startup = wait_ready(a.port, proc)
        cookies = {u: sign_in(a.port, u) for u in ["clin", "comm", "admin"]}
        _, cohort, _, _ = request(a.port, "GET", "/api/v1/cohort?band=very_high", cookies["admin"])
        ref = re.search(rb'"reference":"([0-9a-f]+)"', cohort).group(1).decode()
        _, css, _, _ = request(a.port, "GET", "/static/app.css")
        pages = [
            ("admin", "/risk"), ("comm", "/risk"), ("clin", "/risk"),
            ("admin", "/risk?by=imd_quintile"), ("comm", "/risk?by=ethnic_group"),
            ("admin", "/cohorts?band=high"), ("clin", "/cohorts?decile=10"),
            ("admin", f"/patients/{ref}"), ("admin", "/quality"), ("admin", "/population"),
            ("admin", "/api/v1/risk/distribution"), ("admin", "/api/v1/cohort?per_page=1000"),
            ("admin", f"/api/v1/patients/{ref}"),
        ]
        print(f"onboard serve over {a.run}: ready in {startup:.1f} s; {a.repeat} requests per page; "
              f"stylesheet {len(css)} B (once, cached)")
        print(f"{'role':<6} {'page':<32} {'TTFB p50':>9} {'TTFB p95':>9} {'total p50':>10} {'bytes':>9}")
        for user, path in pages:
            ttfb, total, size = [], [], 0
            for _ in range(a.repeat):
                r, data, t1, t2 = request(a.port, "GET", path, cookies[user])
                assert r.status == 200, f"{path}: {r.status}"
                ttfb.append(t1 * 1000)
                total.append(t2 * 1000)
                size = len(data)
            ttfb.sort()
            p95 = ttfb[min(len(ttfb) - 1, int(len(ttfb) * 0.95))]
            shown = re.sub(r"/patients/[0-9a-f]+", "/patients/{ref}", path)
            print(f"{user:<6} {shown:<32} {statistics.median(ttfb):>7.1f}ms {p95:>7.1f}ms "
                  f"{statistics.median(total):>8.1f}ms {size:>9}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.unlink(ics)


if __name__ == "__main__":
    main()
