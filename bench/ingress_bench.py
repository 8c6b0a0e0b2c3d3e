"""Webhook ingress acknowledgement latency and throughput (DESIGN §13, issue 6).

Three targets in one run, same machine, same client, loopback only:

* ``bare``  — a Starlette endpoint that only verifies the Shopify HMAC and answers 200;
* ``first`` — ``autobiz ingress`` (its own process, built from Settings) receiving
  first deliveries (each a new order: verify, parse, one insert);
* ``dup``   — the same bodies again (answered from the in-process memory of committed
  keys), and ``dup-db`` — again after restarting the ingress, so every duplicate
  goes to the unique index.

Each phase runs a bounded number of requests twice: one at a time (latency p50/p99) and
with ``--concurrency`` requests in flight (throughput, and p99 under that load).

    python bench/ingress_bench.py [--requests 2000] [--concurrency 16]
    python bench/ingress_bench.py --client wrk [--concurrency 4] [--seconds 8]

``--client wrk`` drives the same phases with ``wrk`` (a C load generator: Debian's
``wrk`` package) instead of the Python client, so the client's own cost — which is most
of a duplicate's round trip in the default mode — stops hiding the server's. wrk runs
each phase for ``--seconds`` over pre-signed bodies (a first-delivery phase never repeats
a body; the duplicate phases replay bodies the first phase delivered), and the rows in
``event_store`` are counted after each phase to prove what was stored.

Needs PostgreSQL: ``AUTOBIZ_BENCH_DATABASE_URL`` or the same discovery the tests use
(127.0.0.1:5432, Docker, embedded); a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import free_port, scratch_database, wait_http  # noqa: E402

SECRET = "shpss_bench_secret"  # noqa: S105 (a bench-only webhook secret)
TENANT = "bench-tenant"


def shopify_hmac(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def order_body(n: int) -> bytes:
    order = {
        "id": 10_000_000 + n,
        "name": f"#{n}",
        "financial_status": "paid",
        "cancelled_at": None,
        "total_price": "25.00",
        "currency": "USD",
        "email": "buyer@example.com",
        "line_items": [{"title": "Tee", "quantity": 1, "price": "25.00", "sku": f"TEE-{n % 7}"}],
    }
    return json.dumps(order).encode()


# -- the bare endpoint (run with --serve-bare PORT) ------------------------------------


def serve_bare(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ingress.signatures import verify_shopify

    secrets = [SECRET.encode()]

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()
        ok = verify_shopify(body, request.headers.get("x-shopify-hmac-sha256"), secrets).ok
        return JSONResponse({"ok": ok}, status_code=200 if ok else 401)

    app = Starlette(routes=[Route("/webhooks/shopify", endpoint, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- processes -------------------------------------------------------------------------


@contextmanager
def process(cmd: list[str], env: dict[str, str], probe: str) -> Iterator[None]:
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    try:
        wait_http(probe)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def bare_endpoint(port: int) -> Iterator[str]:
    """The bare HMAC endpoint (the floor) in a process of its own; yields its URL."""
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, __file__, "--serve-bare", str(port)], {}, f"{url}/nothing"):
        yield url


INGRESS_CMD = [sys.executable, "-m", "autobiz.cli.main", "ingress", "--no-relay"]


def ingress_env(admin: str, app: str, home: str, port: int, concurrency: int) -> dict[str, str]:
    """`autobiz ingress` on the scratch database, with a home of its own, taking the
    bench tenant's signed Shopify webhooks on ``port``."""
    return {
        "AUTOBIZ_DATABASE_URL": admin,
        "AUTOBIZ_APP_DATABASE_URL": app,
        "AUTOBIZ_HOME": home,
        "AUTOBIZ_LOG_LEVEL": "ERROR",
        "AUTOBIZ_INGRESS__PORT": str(port),
        "AUTOBIZ_INGRESS__DEFAULT_TENANT": TENANT,
        "AUTOBIZ_SHOPIFY__WEBHOOK_SECRET": SECRET,
        "AUTOBIZ_SHOPIFY__SHOP_DOMAIN": "bench.myshopify.com",
        "AUTOBIZ_POSTGRES__POOL_MAX_SIZE": str(max(concurrency, 4)),
    }


# -- measurement -----------------------------------------------------------------------


@dataclass
class Result:
    name: str
    p50_ms: float
    p99_ms: float
    load_p99_ms: float
    rps: float


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def post(http: httpx.AsyncClient, body: bytes, expect: str | None) -> float:
    headers = {
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Hmac-Sha256": shopify_hmac(body),
        "X-Shopify-Shop-Domain": "bench.myshopify.com",
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    resp = await http.post("/webhooks/shopify", content=body, headers=headers)
    elapsed = time.perf_counter() - started
    if resp.status_code != 200 or (expect and resp.json().get("status") != expect):
        raise RuntimeError(f"unexpected answer {resp.status_code}: {resp.text[:200]}")
    return elapsed


async def phase(
    name: str, url: str, seq: list[bytes], load: list[bytes], concurrency: int, expect: str | None
) -> Result:
    async with httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=concurrency)
    ) as http:
        for body in seq[:20]:  # warm-up on bodies the phase expects anyway
            await post(http, body, None)
        latencies = [await post(http, body, expect) for body in seq[20:]]
        queue = list(load)
        under_load: list[float] = []

        async def worker() -> None:
            while queue:
                under_load.append(await post(http, queue.pop(), expect))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return Result(
        name, pct(latencies, 0.5), pct(latencies, 0.99), pct(under_load, 0.99), len(load) / wall
    )


async def run(requests: int, concurrency: int) -> list[Result]:
    seq_bodies = [order_body(n) for n in range(requests)]
    load_bodies = [order_body(requests + n) for n in range(requests * 2)]
    bare_port, ingress_port = free_port(), free_port()
    results: list[Result] = []
    with bare_endpoint(bare_port) as bare:
        results.append(
            await phase(
                "bare HMAC endpoint",
                bare,
                seq_bodies,
                load_bodies,
                concurrency,
                None,
            )
        )
    with scratch_database(TENANT) as (admin, app), tempfile.TemporaryDirectory() as home:
        env = ingress_env(admin, app, home, ingress_port, concurrency)
        cmd = INGRESS_CMD
        url = f"http://127.0.0.1:{ingress_port}"
        with process(cmd, env, f"{url}/readyz"):
            results.append(
                await phase(
                    "ingress, first deliveries",
                    url,
                    seq_bodies,
                    load_bodies,
                    concurrency,
                    "pending",
                )
            )
            results.append(
                await phase(
                    "ingress, duplicates", url, seq_bodies, load_bodies, concurrency, "duplicate"
                )
            )
        with process(cmd, env, f"{url}/readyz"):  # restarted: no memory, the index decides
            results.append(
                await phase(
                    "ingress, duplicates after restart",
                    url,
                    seq_bodies,
                    load_bodies,
                    concurrency,
                    "duplicate",
                )
            )
    return results


# -- wrk mode ---------------------------------------------------------------------------

WRK_SCRIPT = """
local bodies = {}
local sigs = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
  local sig, body = line:match("^(%S+) (.*)$")
  sigs[#sigs + 1] = sig
  bodies[#bodies + 1] = body
end
local limit = tonumber(os.getenv("BENCH_CYCLE") or #bodies)
local i = 0
request = function()
  i = i % limit + 1
  return wrk.format("POST", "/webhooks/shopify", {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Topic"] = "orders/paid",
    ["X-Shopify-Shop-Domain"] = "bench.myshopify.com",
    ["X-Shopify-Hmac-Sha256"] = sigs[i],
  }, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %.3f %.3f %d\\n", summary.requests,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
"""


def wrk_phase(
    name: str, url: str, bodies_file: Path, cycle: int | None, concurrency: int, seconds: int
) -> tuple[Result, int]:  # cycle: only the first ``cycle`` bodies, over and over
    """One wrk run; returns the result and the number of requests sent."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    env = {**os.environ, "BENCH_BODIES": str(bodies_file)}
    if cycle is not None:
        env["BENCH_CYCLE"] = str(cycle)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", script.name, url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script.name)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))
    sent, micros, p50, p99, bad = line.split()[1:]
    if int(bad):
        raise RuntimeError(f"{name}: {bad} non-2xx answers")
    rps = int(sent) / (int(micros) / 1e6)
    return Result(name, float(p50), float(p99), float(p99), rps), int(sent)


def run_wrk(concurrency: int, seconds: int) -> list[Result]:
    bodies = [order_body(n) for n in range(4000 * seconds)]
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        bodies_file = Path(tmp) / "bodies.txt"
        bodies_file.write_text(
            "".join(f"{shopify_hmac(b)} {b.decode()}\n" for b in bodies), encoding="utf-8"
        )
        bare_port, ingress_port = free_port(), free_port()
        with bare_endpoint(bare_port) as bare:
            results.append(
                wrk_phase(
                    "bare HMAC endpoint",
                    bare,
                    bodies_file,
                    None,
                    concurrency,
                    seconds,
                )[0]
            )
        with scratch_database(TENANT) as (admin, app), tempfile.TemporaryDirectory() as home:
            env = ingress_env(admin, app, home, ingress_port, concurrency)
            cmd = INGRESS_CMD
            url = f"http://127.0.0.1:{ingress_port}"

            def stored() -> int:
                with psycopg.connect(admin) as conn:
                    row = conn.execute("SELECT count(*) FROM event_store").fetchone()
                return int(row[0]) if row else 0

            with process(cmd, env, f"{url}/readyz"):
                first, sent = wrk_phase(
                    "ingress, first deliveries", url, bodies_file, None, concurrency, seconds
                )
                # wrk counts completed requests; up to one per connection was still in
                # flight when it stopped, and the server may have stored it.
                time.sleep(1.0)  # let the last in-flight inserts commit
                base = stored()
                if sent >= len(bodies) or not sent <= base <= sent + concurrency:
                    raise RuntimeError(f"first phase: sent {sent}, stored {base}")
                results.append(first)
                # Duplicates: bodies the first phase stored (by their SHA-256).
                with psycopg.connect(admin) as conn:
                    have = {r[0] for r in conn.execute("SELECT payload_sha256 FROM event_store")}
                dups = [b for b in bodies if hashlib.sha256(b).hexdigest() in have][:1000]
                dup_file = Path(tmp) / "dups.txt"
                dup_file.write_text(
                    "".join(f"{shopify_hmac(b)} {b.decode()}\n" for b in dups), encoding="utf-8"
                )
                results.append(
                    wrk_phase("ingress, duplicates", url, dup_file, None, concurrency, seconds)[0]
                )
            with process(cmd, env, f"{url}/readyz"):
                results.append(
                    wrk_phase(
                        "ingress, duplicates after restart",
                        url,
                        dup_file,
                        None,
                        concurrency,
                        seconds,
                    )[0]
                )
            if stored() != base:
                raise RuntimeError(f"a duplicate was stored: {base} then {stored()}")
    return results


def report(results: list[Result], requests: int, concurrency: int) -> str:
    lines = [
        f"requests per phase: {requests} sequential + {requests * 2} at concurrency {concurrency}"
        if requests
        else f"p50/p99 at {concurrency} connections (p99@load repeats p99)",
        f"{'target':36} {'p50 ms':>8} {'p99 ms':>8} {'p99@load':>9} {'req/s':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.name:36} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.load_p99_ms:9.2f} {r.rps:8.0f}"
        )
    bare, first, dup, dup_db = results
    lines += [
        "",
        f"first / bare p50: {first.p50_ms / bare.p50_ms:.2f}x;  "
        f"first / dup p50: {first.p50_ms / dup.p50_ms:.2f}x;  "
        f"first / dup-after-restart p50: {first.p50_ms / dup_db.p50_ms:.2f}x",
        f"throughput dup / first: {dup.rps / first.rps:.2f}x;  "
        f"dup-after-restart / first: {dup_db.rps / first.rps:.2f}x;  "
        f"bare / first: {bare.rps / first.rps:.2f}x",
        f"server-side cost above bare (p50): first {first.p50_ms - bare.p50_ms:.2f} ms, "
        f"dup {dup.p50_ms - bare.p50_ms:.2f} ms, dup-after-restart "
        f"{dup_db.p50_ms - bare.p50_ms:.2f} ms",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--client", choices=["python", "wrk"], default="python")
    parser.add_argument("--seconds", type=int, default=8, help="per phase, with --client wrk")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return
    if args.client == "wrk":
        results = run_wrk(args.concurrency, args.seconds)
        print(f"wrk, {args.seconds}s per phase, {args.concurrency} connections")
        print(report(results, 0, args.concurrency))
        return
    results = asyncio.run(run(args.requests, args.concurrency))
    print(report(results, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
