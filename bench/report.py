#!/usr/bin/env python3
"""Turns one bench/run.sh output directory into report.md (docs/benchmarks.md-ready tables)
and throughput.svg (flows/s and p99 against concurrency, par-server vs oidc-provider).
Standard library only; every number comes from the files of that run."""

import json
import os
import re
import sys

out = sys.argv[1]


def read(name, default=""):
    p = os.path.join(out, name)
    return open(p).read() if os.path.exists(p) else default


rows = [json.loads(l) for l in read("results.jsonl").splitlines() if l.strip()]


def by(label, c=None):
    rs = [r for r in rows if r["label"] == label and (c is None or r["connections"] == c)]
    return rs[-1] if rs else None


def f0(x):
    return "–" if x is None else f"{x:,.0f}"


def f2(x):
    return "–" if x is None else f"{x:.2f}"


def mib(kib):
    return "–" if not kib else f"{kib / 1024:.1f}"


def wrk(name):
    t = read(name)
    if not t:
        return None
    rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", t, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    errs = re.search(r"Socket errors: (.*)", t)
    return {
        "rps": float(rps.group(1)) if rps else None,
        "p50": lat.get("50"),
        "p99": lat.get("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket": errs.group(1) if errs else "none",
    }


lines = []
w = lines.append


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


# --- headline: the default configuration next to the benchmark's, from the interleaved A/B
def headline():
    runs = {(s, lvl): [r for r in rows if r["label"] == f"par-server-{s}-log-{lvl}" and r["connections"] == 64]
            for s in ["push", "sso"] for lvl in ["info", "warn"]}
    if not any(runs.values()):
        return
    w("### Headline (c = 64): default configuration (`log.level: info`) and benchmark (`warn`)\n")
    w("Same run, interleaved (info, warn, info, warn, …); means over the rounds, each round's value in brackets.\n")
    w("| scenario | info (default) flows/s | warn flows/s | info/warn | info CPU µs/flow | warn CPU µs/flow | warn/info CPU |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for s in ["push", "sso"]:
        i, o = runs[(s, "info")], runs[(s, "warn")]
        if not i or not o:
            continue
        fi, fo = mean([r["flows_per_sec"] for r in i]), mean([r["flows_per_sec"] for r in o])
        ci, co = mean([r.get("server_cpu_us_per_flow") for r in i]), mean([r.get("server_cpu_us_per_flow") for r in o])
        each = lambda rs, k, fmt: " (" + " / ".join(fmt(r.get(k)) for r in rs) + ")"
        w(f"| {s} | {fi:,.0f}{each(i, 'flows_per_sec', f0)} | {fo:,.0f}{each(o, 'flows_per_sec', f0)} | {fi / fo:.2f} | "
          f"{f0(ci)}{each(i, 'server_cpu_us_per_flow', f0)} | {f0(co)}{each(o, 'server_cpu_us_per_flow', f0)} | "
          f"{(co / ci) if ci and co else float('nan'):.2f} |")
    w("")


headline()


# --- limits in force (never hit) against all off and the bare handler, from the interleaved A/B
def limits_table():
    pick = lambda label: [r for r in rows if r["label"] == label and r["connections"] == 64]
    bare = pick("bare-push-limits")
    runs = {(s, x): pick(f"par-server-{s}-limits-{x}") for s in ["push", "sso"] for x in ["on", "off"]}
    if not any(runs.values()):
        return
    fl = lambda rs: mean([r["flows_per_sec"] for r in rs])
    cpu = lambda rs: mean([r.get("server_cpu_us_per_flow") for r in rs])
    each = lambda rs: " (" + " / ".join(f0(r["flows_per_sec"]) for r in rs) + ")"
    w("### Limits in force (never hit), all off, and the bare handler (c = 64)\n")
    w("Same run, interleaved rounds; means over the rounds, each round's value in brackets.\n")
    w("| scenario | limits on flows/s | limits off flows/s | bare handler flows/s | on/off | on/bare | on CPU µs/flow | off CPU µs/flow |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in ["push", "sso"]:
        on, off = runs[(s, "on")], runs[(s, "off")]
        if not on or not off:
            continue
        b = bare if s == "push" and bare else []
        ratio_bare = f"{fl(on) / fl(b):.2f}" if b else "–"
        w(f"| {s} | {fl(on):,.0f}{each(on)} | {fl(off):,.0f}{each(off)} | "
          f"{(f'{fl(b):,.0f}' + each(b)) if b else '–'} | {fl(on) / fl(off):.2f} | {ratio_bare} | "
          f"{f0(cpu(on))} | {f0(cpu(off))} |")
    w("")


limits_table()
w("### Machine\n")
w("```\n" + read("machine.txt").strip() + "\n```\n")

# --- reference points
w("### Reference points (c = 64)\n")
w("| target | requests/s | p50 ms | p99 ms | errors |")
w("|---|---:|---:|---:|---|")
for line in read("redis-benchmark-c64.csv").splitlines()[1:]:
    cells = [c.strip('"') for c in line.split(",")]
    if len(cells) >= 8:
        w(f"| redis-benchmark {cells[0]} (-c 64) | {float(cells[1]):,.0f} | {cells[4]} | {cells[6]} | – |")
bare = by("bare-push", 64)
if bare:
    s = bare["steps"]["par"]
    w(f"| bare handler POST /par (loadgen) | {bare['flows_per_sec']:,.0f} | {f2(s['p50_ms'])} | {f2(s['p99_ms'])} | {bare['error_count']} |")
for name, label in [
    ("wrk-bare-hello.txt", "bare handler GET /hello (wrk -t2)"),
    ("wrk-bare-par.txt", "bare handler POST /par (wrk -t2)"),
    ("wrk-par.txt", "par-server POST /oauth2/par (wrk -t2)"),
]:
    r = wrk(name)
    if r:
        w(f"| {label} | {f0(r['rps'])} | {r['p50']} | {r['p99']} | non-2xx {r['non2xx']}, socket {r['socket']} |")
w("")

# --- sweeps
def sweep(title, labels):
    w(f"### {title}\n")
    w("| server | scenario | c | flows/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU µs/flow | RSS max MiB |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label in labels:
        for r in sorted((r for r in rows if r["label"] == label), key=lambda r: r["connections"]):
            fl = r["flow"] or {}
            w(
                f"| {label.rsplit('-', 1)[0]} | {r['scenario']} | {r['connections']} | {r['flows_per_sec']:,.0f} | "
                f"{f2(fl.get('p50_ms'))} | {f2(fl.get('p90_ms'))} | {f2(fl.get('p99_ms'))} | {f2(fl.get('max_ms'))} | "
                f"{r['error_count']} | {f0(r.get('server_cpu_us_per_flow'))} | {mib(r.get('rss_kib_max'))} |"
            )
    w("")


sweep("Pushes (PAR only)", ["par-server-push", "oidc-provider-1p-push", "oidc-provider-2p-push"])
sweep("SSO logins (PAR → authorize with SSO cookie → token)", ["par-server-sso", "oidc-provider-1p-sso", "oidc-provider-2p-sso"])
sweep("Password logins (PAR → authorize → login form → token)", ["par-server-password"])

w("### Latency per step (c = 64)\n")
w("| run | step | per s | p50 ms | p90 ms | p99 ms | max ms |")
w("|---|---|---:|---:|---:|---:|---:|")
for label in ["par-server-push", "par-server-sso", "oidc-provider-1p-sso", "oidc-provider-2p-sso"]:
    r = by(label, 64)
    if r:
        for step, s in r["steps"].items():
            w(f"| {label} | {step} | {s['per_sec']:,.0f} | {f2(s['p50_ms'])} | {f2(s['p90_ms'])} | {f2(s['p99_ms'])} | {f2(s['max_ms'])} |")
r = by("par-server-password", 32)
if r:
    for step, s in r["steps"].items():
        w(f"| par-server-password (c=32) | {step} | {s['per_sec']:,.0f} | {f2(s['p50_ms'])} | {f2(s['p90_ms'])} | {f2(s['p99_ms'])} | {f2(s['max_ms'])} |")
w("")

# --- errors
errs = [(r["label"], r["connections"], k, n) for r in rows for k, n in r["errors"].items()]
w("### Errors\n")
if errs:
    w("| run | c | kind | count |")
    w("|---|---:|---|---:|")
    for e in errs:
        w(f"| {e[0]} | {e[1]} | {e[2]} | {e[3]} |")
else:
    w("No request failed in any run.")
w("")

# --- redis commands
w("### Redis commands per flow (one client, 500 flows, INFO commandstats delta)\n")
w("| flow | commands/flow | by command |")
w("|---|---:|---|")
for label in ["par-server-push-commands", "par-server-sso-commands", "par-server-password-commands",
              "oidc-provider-2p-push-commands", "oidc-provider-2p-sso-commands"]:
    r = by(label)
    if r and r.get("redis_commands_per_flow_total") is not None:
        cmds = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["redis_commands_per_flow"].items()))
        w(f"| {label.replace('-commands', '')} | {r['redis_commands_per_flow_total']:.2f} | {cmds} |")
w("")

# --- round trips, from MONITOR: top-level commands are round trips, "[0 lua]" ones run
# inside a script. The sequence of the last complete flow is listed.
w("### Redis round trips per flow (MONITOR: top-level commands; script-internal ones in brackets)\n")
w("| flow | round trips (top-level commands) / flow | script-internal commands / flow | the last flow's commands, in order |")
w("|---|---:|---:|---|")
for s in ["push", "sso", "password"]:
    text = read(f"monitor-par-server-{s}.txt")
    r = by(f"par-server-{s}-commands")
    if not text or not r or not r["flows"]:
        continue
    top, lua, seq = 0, 0, []
    for line in text.splitlines():
        m = re.match(r'^[\d.]+ \[\d+ ([^\]]+)\] "(\w+)"(?: "([^"]*)")?', line)
        if not m:
            continue
        origin, cmd, arg = m.group(1), m.group(2).upper(), m.group(3) or ""
        if cmd in ("INFO", "MONITOR", "PING", "CLIENT", "HELLO"):
            continue
        if origin == "lua":
            lua += 1
            seq.append(f"[{cmd}]")
        else:
            top += 1
            if cmd == "SET" and re.match(r"^par:par:", arg):
                seq = []
            key = re.sub(r"\{[^}]*\}", "{…}", arg) if not cmd.startswith("EVAL") else ""
            seq.append(f"{cmd} {key}".strip())
    flows = r["flows"]
    w(f"| {s} | {top / flows:.2f} | {lua / flows:.2f} | {' → '.join(f'`{x}`' for x in seq)} |")
w("\nThe per-flow figures include the one password sign-in of the `sso` client at the start (1 in 500).\n")

# --- pool vs multiplexed
w("### `redis.connection`: multiplexed vs pool (c = 64)\n")
w("| connection | scenario | flows/s | p50 ms | p99 ms | Redis commands/flow | server CPU µs/flow |")
w("|---|---|---:|---:|---:|---:|---:|")
for mode in ["multiplexed", "pool"]:
    for s in ["push", "sso"]:
        r = by(f"par-server-{s}-{mode}", 64)
        if r:
            fl = r["flow"] or {}
            w(f"| {mode} | {s} | {r['flows_per_sec']:,.0f} | {f2(fl.get('p50_ms'))} | {f2(fl.get('p99_ms'))} | "
              f"{f2(r.get('redis_commands_per_flow_total'))} | {f0(r.get('server_cpu_us_per_flow'))} |")
w("")

# --- argon2
a = read("argon2-bound.json").strip()
if a:
    a = json.loads(a)
    w("### argon2id bound\n")
    w(f"`argon2_bound 2 10`: {a['per_sec']:.1f} verifications/s on {a['threads']} threads "
      f"({a['ms_per_verification']:.1f} ms wall each, `{a['phc_params']}`), "
      f"{a.get('cpu_ms_per_verification', 0):.1f} ms of CPU each: with every core to itself argon2 would allow "
      f"**{a.get('bound_per_sec_all_cores', 0):.0f} logins/s**.\n")
    best = max((r for r in rows if r["label"] == "par-server-password"), key=lambda r: r["flows_per_sec"], default=None)
    if best and a.get("cpu_ms_per_verification"):
        eff = a["cpu_ms_per_verification"] * 1000 / best["server_cpu_us_per_flow"]
        w(f"par-server spends {best['server_cpu_us_per_flow'] / 1000:.1f} ms of CPU per password login (c={best['connections']}), "
          f"of which argon2 is {a['cpu_ms_per_verification']:.1f} ms: **{eff:.0%}** of a password login's server CPU is the hash.\n")

# --- RSS
w("### RSS\n")
w(f"- par-server idle after start: {mib(int(read('par-rss-idle-kib.txt', '0') or 0))} MiB; "
  f"after the sweeps: {mib(int(read('par-rss-after-kib.txt', '0') or 0))} MiB")
for line in read("peer-rss-idle-kib.txt").splitlines():
    label, kib = line.split()
    w(f"- {label} idle (all processes): {mib(int(kib))} MiB")
soak = read("soak-rss.txt").split("\n")
if read("soak-rss.txt"):
    w("\nSoak (SSO logins at half the peak rate), par-server RSS:\n")
    w("| minute | RSS MiB |")
    w("|---|---:|")
    for line in soak:
        if line.strip():
            m, kib = line.split()
            w(f"| {m} | {mib(int(kib))} |")
    s = by("par-server-soak")
    if s:
        fl = s["flow"] or {}
        w(f"\nSoak load: {s['flows']:,} SSO logins in {s['seconds']:.0f} s ({s['flows_per_sec']:,.0f}/s), "
          f"p99 {f2(fl.get('p99_ms'))} ms, {s['error_count']} errors.")
w("")

# --- ratios
def rate(label, c=None):
    rs = [r for r in rows if r["label"] == label and (c is None or r["connections"] == c)]
    return max((r["flows_per_sec"] for r in rs), default=None)


w("### Ratios\n")
pairs = [
    ("PAR push / bare handler (c=64, loadgen)", rate("par-server-push", 64), rate("bare-push", 64)),
    ("PAR push / oidc-provider 2 processes (best c each)", rate("par-server-push"), rate("oidc-provider-2p-push")),
    ("PAR push / oidc-provider 1 process (best c each)", rate("par-server-push"), rate("oidc-provider-1p-push")),
    ("SSO login / oidc-provider 2 processes (best c each)", rate("par-server-sso"), rate("oidc-provider-2p-sso")),
    ("SSO login / oidc-provider 1 process (best c each)", rate("par-server-sso"), rate("oidc-provider-1p-sso")),
]
if a:
    pairs.append(("password logins / argon2 bound measured alongside (best c)", rate("par-server-password"), a["per_sec"]))
for name, x, y in pairs:
    if x and y:
        w(f"- {name}: {x:,.0f} / {y:,.0f} = **{x / y:.2f}×**")
w("")

open(os.path.join(out, "report.md"), "w").write("\n".join(lines))

# --- plot: two panels, hand-written SVG
series = [
    ("par-server-push", "par-server push", "#1f77b4", ""),
    ("par-server-sso", "par-server SSO login", "#1f77b4", "6,3"),
    ("oidc-provider-1p-push", "oidc-provider 1p push", "#d62728", ""),
    ("oidc-provider-1p-sso", "oidc-provider 1p SSO login", "#d62728", "6,3"),
    ("oidc-provider-2p-push", "oidc-provider 2p push", "#ff7f0e", ""),
    ("oidc-provider-2p-sso", "oidc-provider 2p SSO login", "#ff7f0e", "6,3"),
]
import math

data = {}
for label, *_ in series:
    pts = sorted((r["connections"], r["flows_per_sec"], (r["flow"] or {}).get("p99_ms") or 0)
                 for r in rows if r["label"] == label)
    if pts:
        data[label] = pts
conns = sorted({c for pts in data.values() for c, _, _ in pts}) or [1]
W, H, M = 460, 320, 60


def panel(x0, title, idx, ylabel):
    vals = [p[idx] for pts in data.values() for p in pts if p[idx] > 0] or [1]
    lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    hi = max(hi, lo + 1)
    cx = lambda c: x0 + M + (conns.index(c) / max(len(conns) - 1, 1)) * (W - M - 20)
    cy = lambda v: 20 + (H - 60) * (1 - (math.log10(max(v, 10 ** lo)) - lo) / (hi - lo))
    s = [f'<text x="{x0 + W / 2}" y="14" text-anchor="middle" font-size="13">{title}</text>']
    s.append(f'<text x="{x0 + 14}" y="{H / 2}" font-size="11" transform="rotate(-90 {x0 + 14} {H / 2})" text-anchor="middle">{ylabel}</text>')
    for e in range(lo, hi + 1):
        y = cy(10 ** e)
        s.append(f'<line x1="{x0 + M}" x2="{x0 + W - 20}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        s.append(f'<text x="{x0 + M - 4}" y="{y + 4}" font-size="10" text-anchor="end">{10 ** e:g}</text>')
    for c in conns:
        s.append(f'<text x="{cx(c)}" y="{H - 24}" font-size="10" text-anchor="middle">{c}</text>')
    s.append(f'<text x="{x0 + W / 2}" y="{H - 8}" font-size="11" text-anchor="middle">concurrent clients</text>')
    for label, name, color, dash in series:
        if label not in data:
            continue
        pts = [(cx(c), cy(p[idx])) for c, *rest in data[label] for p in [(c, *rest)] if p[idx] > 0]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        s.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for x, y in pts:
            s.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    return s


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 20 * len(series) // 2 + 20}" font-family="sans-serif">',
       '<rect width="100%" height="100%" fill="white"/>']
svg += panel(0, "Throughput (flows/s, log scale)", 1, "flows/s")
svg += panel(W, "p99 latency of a flow (ms, log scale)", 2, "ms")
for i, (label, name, color, dash) in enumerate(series):
    if label not in data:
        continue
    x, y = 70 + (i % 2) * 300, H + 10 + (i // 2) * 18
    svg.append(f'<line x1="{x}" x2="{x + 30}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
    svg.append(f'<text x="{x + 36}" y="{y + 4}" font-size="11">{name}</text>')
svg.append("</svg>")
open(os.path.join(out, "throughput.svg"), "w").write("\n".join(svg))
print(open(os.path.join(out, "report.md")).read())
