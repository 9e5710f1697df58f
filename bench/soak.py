#!/usr/bin/env python3
"""Soak test of the stamp issuer (issue 14, item 6): mixed traffic for a while, sampled.

Builds the release binary, starts the issuer on a loopback port with a throwaway state
directory (on disk, under the target directory) and a short rotation schedule, and sends bounded
mixed traffic at a fixed rate: JWKS fetches, client_credentials grants, refresh grants, password
logins and, every ROTATE_EVERY seconds, an admin rotation (besides the scheduled ones). Every
INTERVAL seconds it records the server's resident memory (VmRSS), open file descriptors, the
database's size (file + WAL), the requests of the interval, their p50/p99 latency and the
unexpected answers. It writes soak.csv and soak.svg (a chart drawn by this script) to --out and
prints a verdict: after the warm-up, resident memory within +-10% and descriptors within +-8 of
the first sample after it, and no unexpected answer. Exit status 1 when the verdict fails.

    bench/soak.py                       # 600 s at 20 requests/s (about 11 minutes)
    bench/soak.py --duration 60         # a short run
    bench/soak.py --out docs            # the published figures (docs/soak.csv, docs/soak.svg)

Options: --duration S (600), --rate R (requests per second, 20), --interval S (10),
--warmup S (60, at most a third of the run), --workers N (4), --out DIR
(target/soak), --bin PATH (use this stamp binary instead of building one; CARGO=... picks the
cargo command used to build, e.g. a wrapper). Only loopback traffic; every loop is bounded by
the duration and the rate. Python 3 standard library only.
"""

import argparse
import collections
import csv
import http.client
import json
import os
import queue
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "another correct horse battery"
CLIENT_ID = "soak-svc"
SCOPE = "api.read"

# The traffic mix, per request sent (admin rotations come on their own schedule).
MIX = [("jwks", 40), ("client_credentials", 30), ("refresh", 22), ("login", 8)]

# Settings for a short key lifecycle: a scheduled rotation every 30 s (the rules ask for at
# least the 10 s JWKS max-age plus the 5 s leeway) and 60 s access tokens, so retired keys are
# removed after 65 s and the key set stays small; refresh tokens as short as allowed.
SETTINGS = {
    "ROCKET_JWKS_MAX_AGE": "10",
    "ROCKET_ROTATION_LEEWAY": "5",
    "ROCKET_ROTATE_EVERY": "30",
    "ROCKET_ACCESS_TOKEN_TTL": "60",
    "ROCKET_REFRESH_TOKEN_TTL": "120",
    "ROCKET_REFRESH_FAMILY_TTL": "300",
    "ROCKET_PASSWORD_CONCURRENCY": "1",
    "ROCKET_LOG_LEVEL": "critical",
    "ROCKET_CLI_COLORS": "false",
}
ROTATE_EVERY = 45


def main():
    args = parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    # Absolute: the server and the CLI run with the throwaway state folder as their cwd.
    binary = os.path.abspath(args.bin or build(target))
    work = os.path.join(target, "soak")
    os.makedirs(work, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix="run.", dir=work)
    server = None
    try:
        server = Server(binary, run_dir)
        samples = Soak(server, args).run()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    csv_path = os.path.join(out, "soak.csv")
    svg_path = os.path.join(out, "soak.svg")
    write_csv(csv_path, samples)
    with open(svg_path, "w") as f:
        f.write(chart(samples, args))
    ok, lines = verdict(samples, args)
    print("\n".join(lines))
    print(f"wrote {csv_path} and {svg_path}")
    sys.exit(0 if ok else 1)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=600)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--out", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "soak"))
    p.add_argument("--bin")
    args = p.parse_args()
    if args.duration < 2 * args.interval or args.interval < 1:
        p.error("--duration must be at least two intervals")
    if not 0 < args.rate <= 500 or not 1 <= args.workers <= 32:
        p.error("--rate must be in (0, 500] and --workers in [1, 32]")
    args.warmup = min(args.warmup, args.duration // 3)
    return args


def build(target):
    cargo = os.environ.get("CARGO", "cargo")
    print(f"building the release binary ({cargo} build --release --bin stamp)...", file=sys.stderr)
    subprocess.run([cargo, "build", "--release", "--quiet", "--bin", "stamp"], cwd=ROOT,
                   check=True)
    return os.path.join(target, "release", "stamp")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`stamp serve` on loopback with its state in `run_dir`, a user, an admin and a client."""

    def __init__(self, binary, run_dir):
        self.port = free_port()
        self.run_dir = run_dir
        self.db = os.path.join(run_dir, "stamp.db")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ROCKET_")}
        self.env.update(SETTINGS)
        self.env.update({
            "ROCKET_CONFIG": os.path.join(ROOT, "Rocket.toml"),
            "ROCKET_PROFILE": "release",
            "ROCKET_ADDRESS": "127.0.0.1",
            "ROCKET_PORT": str(self.port),
            "ROCKET_ISSUER": f"http://127.0.0.1:{self.port}",
            "ROCKET_KEYS_DIR": os.path.join(run_dir, "keys"),
            "ROCKET_DATABASE_URL": f"sqlite://{self.db}",
        })
        self.binary = binary
        self.cli(["init"])
        self.cli(["users", "add", "soak", "--password-stdin"], PASSWORD)
        self.cli(["users", "add", "ops", "--admin", "--password-stdin"], ADMIN_PASSWORD)
        self.secret = self.cli(["clients", "add", CLIENT_ID, "--scope", SCOPE]).strip()
        log = open(os.path.join(run_dir, "server.log"), "w")
        self.proc = subprocess.Popen([binary, "serve"], env=self.env, cwd=run_dir,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"soak: stamp serve exited: {read(os.path.join(run_dir, 'server.log'))}")
            try:
                if request(self.conn(), "GET", "/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("soak: the server was not ready within 60 s")
            time.sleep(0.1)

    def cli(self, args, stdin=""):
        done = subprocess.run([self.binary, *args], env=self.env, cwd=self.run_dir,
                              input=stdin + "\n", capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"soak: stamp {' '.join(args)}: {done.stderr}")
        return done.stdout

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # What the samples read.
    def rss_kib(self):
        for line in read(f"/proc/{self.proc.pid}/status").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def file_bytes(self, suffix):
        path = self.db + suffix
        return os.path.getsize(path) if os.path.exists(path) else 0


def read(path):
    with open(path) as f:
        return f.read()


def request(conn, method, path, body=None, headers=None):
    headers = dict(headers or {})
    if body is not None and "Content-Type" not in headers:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def form(**fields):
    return urllib.parse.urlencode(fields)


class Soak:
    """The load: a pacer puts one job per 1/rate seconds into a bounded queue, workers with a
    keep-alive connection each send them, a sampler reads the server every interval."""

    def __init__(self, server, args):
        self.server = server
        self.args = args
        self.jobs = queue.Queue(maxsize=args.workers * 4)
        self.lock = threading.Lock()
        self.latencies = []
        self.jwks_latencies = []
        self.requests = 0
        self.errors = collections.Counter()
        self.dropped = 0
        self.refresh_tokens = collections.deque(maxlen=64)
        self.stop = threading.Event()
        self.rng = random.Random(14)

    def run(self):
        workers = [threading.Thread(target=self.worker, daemon=True)
                   for _ in range(self.args.workers)]
        for w in workers:
            w.start()
        rotator = threading.Thread(target=self.rotator, daemon=True)
        rotator.start()
        samples = []
        start = time.monotonic()
        next_job = start
        next_sample = start + self.args.interval
        end = start + self.args.duration
        kinds = [k for k, _ in MIX]
        weights = [w for _, w in MIX]
        print(f"soak: {self.args.duration} s at {self.args.rate:g} requests/s on port "
              f"{self.server.port}", file=sys.stderr)
        samples.append(self.sample(0.0))
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_sample:
                samples.append(self.sample(next_sample - start))
                next_sample += self.args.interval
                continue
            if now >= next_job:
                kind = self.rng.choices(kinds, weights)[0]
                try:
                    self.jobs.put_nowait(kind)
                except queue.Full:
                    with self.lock:
                        self.dropped += 1
                next_job += 1.0 / self.args.rate
                continue
            time.sleep(max(0.0, min(next_job, next_sample, end) - now))
        samples.append(self.sample(self.args.duration))
        self.stop.set()
        for _ in workers:
            self.jobs.put(None)
        for w in workers:
            w.join(35)
        rotator.join(35)
        for what, n in sorted(self.errors.items()):
            print(f"soak: unexpected: {what} x{n}", file=sys.stderr)
        return samples

    def sample(self, t):
        with self.lock:
            latencies, self.latencies = self.latencies, []
            jwks, self.jwks_latencies = self.jwks_latencies, []
            requests, self.requests = self.requests, 0
            errors = sum(self.errors.values())
            dropped = self.dropped
        latencies.sort()
        jwks.sort()
        row = {
            "t_s": round(t),
            "rss_kib": self.server.rss_kib(),
            "fds": self.server.fds(),
            "db_bytes": self.server.file_bytes(""),
            "wal_bytes": self.server.file_bytes("-wal"),
            "requests": requests,
            "p50_ms": round(percentile(latencies, 0.50), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "p99_jwks_ms": round(percentile(jwks, 0.99), 2),
            "errors_total": errors,
            "dropped_total": dropped,
        }
        print("soak: " + " ".join(f"{k}={v}" for k, v in row.items()), file=sys.stderr)
        return row

    def worker(self):
        conn = self.server.conn()
        while True:
            kind = self.jobs.get()
            if kind is None:
                return
            conn = self.attempt(kind, conn)

    def attempt(self, kind, conn, requests=1):
        """Runs do_KIND on `conn`, timed and counted; returns the connection to go on with (a
        new one after a connection error)."""
        started = time.monotonic()
        try:
            ok = getattr(self, "do_" + kind)(conn)
        except (OSError, http.client.HTTPException) as e:
            ok = type(e).__name__
            conn.close()
            conn = self.server.conn()
        took = (time.monotonic() - started) * 1000
        with self.lock:
            self.requests += requests
            self.latencies.append(took)
            if kind == "jwks":
                self.jwks_latencies.append(took)
            if ok is not True:
                self.errors[f"{kind}: {ok}"] += 1
        return conn

    def do_jwks(self, conn):
        status, _ = request(conn, "GET", "/.well-known/jwks.json")
        return status == 200 or status

    def do_client_credentials(self, conn):
        status, _ = request(conn, "POST", "/oauth/token", form(
            grant_type="client_credentials", client_id=CLIENT_ID,
            client_secret=self.server.secret, scope=SCOPE))
        return status == 200 or status

    def do_login(self, conn):
        status, body = request(conn, "POST", "/oauth/token", form(
            grant_type="password", username="soak", password=PASSWORD))
        if status != 200:
            return status
        with self.lock:
            self.refresh_tokens.append(json.loads(body)["refresh_token"])
        return True

    def do_refresh(self, conn):
        with self.lock:
            token = self.refresh_tokens.popleft() if self.refresh_tokens else None
        if token is None:
            return self.do_login(conn)
        status, body = request(conn, "POST", "/oauth/token", form(
            grant_type="refresh_token", refresh_token=token))
        if status != 200:
            return status
        with self.lock:
            self.refresh_tokens.append(json.loads(body)["refresh_token"])
        return True

    def rotator(self):
        """An admin rotation every ROTATE_EVERY seconds (two requests: see do_rotate)."""
        conn = self.server.conn()
        while not self.stop.wait(ROTATE_EVERY):
            conn = self.attempt("rotate", conn, requests=2)

    def do_rotate(self, conn):
        """A forced rotation, with a fresh admin token (access tokens live 60 s here)."""
        status, body = request(conn, "POST", "/oauth/token", form(
            grant_type="password", username="ops", password=ADMIN_PASSWORD))
        if status != 200:
            return f"admin login {status}"
        token = json.loads(body)["access_token"]
        status, _ = request(conn, "POST", "/admin/keys/rotate", json.dumps({"force": True}),
                            {"Authorization": f"Bearer {token}",
                             "Content-Type": "application/json"})
        return status == 200 or status


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def write_csv(path, samples):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(samples[0].keys()))
        writer.writeheader()
        writer.writerows(samples)


def steady(samples, args):
    """The samples after the warm-up."""
    return [s for s in samples if s["t_s"] >= args.warmup]


def verdict(samples, args):
    after = steady(samples, args)
    base = after[0]
    rss = [s["rss_kib"] for s in after]
    fds = [s["fds"] for s in after]
    rss_dev = max(abs(r - base["rss_kib"]) for r in rss) / base["rss_kib"]
    fd_dev = max(abs(f - base["fds"]) for f in fds)
    errors = samples[-1]["errors_total"]
    dropped = samples[-1]["dropped_total"]
    total = sum(s["requests"] for s in samples)
    minutes = (after[-1]["t_s"] - after[0]["t_s"]) / 60 or 1
    db_rate = (after[-1]["db_bytes"] - after[0]["db_bytes"]) / minutes
    last = samples[-1]
    checks = [
        (rss_dev <= 0.10, f"resident memory after the warm-up ({args.warmup} s): "
         f"{base['rss_kib'] / 1024:.1f} MiB at first, {min(rss) / 1024:.1f}-{max(rss) / 1024:.1f}"
         f" MiB, at most {rss_dev:.1%} away (limit 10%)"),
        (fd_dev <= 8, f"open descriptors after the warm-up: {base['fds']} at first, "
         f"{min(fds)}-{max(fds)}, at most {fd_dev} away (limit 8)"),
        (errors == 0, f"unexpected answers: {errors} of {total} requests"),
    ]
    p99 = sorted(s["p99_ms"] for s in after[1:] if s["requests"])
    p99_jwks = sorted(s["p99_jwks_ms"] for s in after[1:] if s["requests"])
    lines = [f"== soak verdict ({args.duration} s, {args.rate:g} requests/s, {total} requests, "
             f"{dropped} not sent because the workers were behind)"]
    lines += [("ok       " if ok else "FAILED   ") + text for ok, text in checks]
    lines.append(f"reported resident memory at start {samples[0]['rss_kib'] / 1024:.1f} MiB, "
                 f"end {samples[-1]['rss_kib'] / 1024:.1f} MiB")
    lines.append(f"reported database file {samples[0]['db_bytes'] / 1024:.0f} KiB at start, "
                 f"{last['db_bytes'] / 1024:.0f} KiB at the end ({db_rate / 1024:+.0f} KiB/min "
                 f"after the warm-up: sessions and audit), WAL {last['wal_bytes'] / 1024:.0f} KiB")
    if p99:
        lines.append(f"reported p99 latency per interval after the warm-up: median "
                     f"{p99[len(p99) // 2]:.1f} ms, worst {p99[-1]:.1f} ms; JWKS only: median "
                     f"{p99_jwks[len(p99_jwks) // 2]:.1f} ms, worst {p99_jwks[-1]:.1f} ms")
    return all(ok for ok, _ in checks), lines


def chart(samples, args):
    """Four stacked panels (RSS, descriptors, database size, p99), the warm-up shaded."""
    mib = 1048576
    panels = [
        ("resident memory (MiB)", [([s["rss_kib"] / 1024 for s in samples], "#1f77b4")]),
        ("open file descriptors", [([s["fds"] for s in samples], "#2ca02c")]),
        ("database: file (dark), file + WAL (light), MiB", [
            ([(s["db_bytes"] + s["wal_bytes"]) / mib for s in samples], "#c5b0d5"),
            ([s["db_bytes"] / mib for s in samples], "#9467bd")]),
        ("p99 latency per interval: all requests (red, logins' argon2 dominate), JWKS (orange), ms",
         [([s["p99_ms"] for s in samples], "#d62728"),
          ([s["p99_jwks_ms"] for s in samples], "#ff7f0e")]),
    ]
    t = [s["t_s"] for s in samples]
    width, left, right, panel_h, gap, top = 720, 70, 20, 120, 40, 40
    height = top + len(panels) * (panel_h + gap) + 10
    t_max = max(t) or 1

    def x(v):
        return left + (width - left - right) * v / t_max

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="13">stamp soak: {args.duration} s, '
           f'{args.rate:g} requests/s (JWKS, client_credentials, refresh, login, rotation); '
           f'warm-up shaded</text>']
    for i, (title, series) in enumerate(panels):
        y0 = top + i * (panel_h + gap)
        hi = max(max(values) for values, _ in series) * 1.15 or 1

        def y(v, y0=y0, hi=hi):
            return y0 + panel_h - panel_h * v / hi

        out.append(f'<rect x="{left}" y="{y0}" width="{x(args.warmup) - left:.1f}" '
                   f'height="{panel_h}" fill="#eeeeee"/>')
        out.append(f'<rect x="{left}" y="{y0}" width="{width - left - right}" '
                   f'height="{panel_h}" fill="none" stroke="#888"/>')
        out.append(f'<text x="{left}" y="{y0 - 6}">{title}</text>')
        for frac in (0, 0.5, 1):
            v = hi * frac / 1.15
            out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                       f'{v:.1f}</text>')
            out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" '
                       f'y2="{y(v):.1f}" stroke="#ddd"/>')
        for values, colour in series:
            points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(t, values))
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                       f'stroke-width="1.5"/>')
        if i == len(panels) - 1:
            for s in range(0, t_max + 1, max(60, args.interval)):
                out.append(f'<text x="{x(s):.1f}" y="{y0 + panel_h + 14}" '
                           f'text-anchor="middle">{s} s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
