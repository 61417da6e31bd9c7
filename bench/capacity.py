#!/usr/bin/env python3
"""The capacity model of par-server (docs/capacity.md), from measured numbers.

    bench/capacity.py sizes MONITOR.txt         value sizes of par-server's records (JSON)
    bench/capacity.py measure OUTDIR            capacity.json from a `bench/run.sh --capacity` run
    bench/capacity.py size capacity.json [opts] the sizing table (markdown)

`size` takes the measured costs from the JSON and the planning rules from its options, so
anyone can redo the table with their own measurements (edit the JSON, or pass another run)
or their own rules:

    --target-util 0.5         plan CPU to at most this utilisation (the headroom rule)
    --vcpu-per-replica 2      vCPUs per par-server replica
    --min-replicas 3          replicas at least (N+1 across zones)
    --primary-cpu 1.0         cores one Redis primary may use (Redis runs commands on one thread)
    --primary-memory-gb 8     data per primary (keep it under half the node's RAM: fork/copy-on-write)
    --rates 1000,10000,100000 SSO logins per second to size for
    --sessions 10000000       concurrent SSO sessions to size for
    --marker-secs 600         life of a code's used-marker (tokens.access_token_lifetime)

Standard library only.
"""

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

# ---------------------------------------------------------------------------------------
# sizes: value sizes from a MONITOR log


def monitor_args(line):
    """The arguments of one MONITOR line, each as its byte length after unescaping."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', line):
        s = m.group(1)
        n = len(re.sub(r"\\x[0-9a-fA-F]{2}|\\.", "_", s))
        out.append((s, n))
    return out


def sizes(monitor_file):
    found = {"par": [], "code": [], "sso": []}
    for line in Path(monitor_file).read_text(errors="replace").splitlines():
        args = monitor_args(line)
        if len(args) < 3 or args[0][0].upper() != "SET":
            continue
        key = args[1][0]
        for kind in found:
            if re.search(rf":{kind}:\{{[^}}]*\}}$", key):
                found[kind].append(args[2][1])
    missing = [k for k, v in found.items() if not v]
    if missing:
        sys.exit(f"no SET of {missing} in {monitor_file}")
    return {k: int(statistics.median(v)) for k, v in found.items()}


# ---------------------------------------------------------------------------------------
# measure: one JSON of everything the model needs


def rows(path):
    p = Path(path)
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()] if p.exists() else []


def measure(outdir):
    out = Path(outdir)
    results = {r["label"]: r for r in rows(out / "results.jsonl")}

    def login(label):
        r = results.get(label)
        if not r:
            return None
        return {
            "connections": r["connections"],
            "flows_per_sec": r["flows_per_sec"],
            "errors": r["error_count"],
            "par_server_cpu_us_per_login": r["server_cpu_us_per_flow"],
            "redis_commands_per_login": r["redis_commands_per_flow_total"],
            "redis_commands": r["redis_commands_per_flow"],
            "redis_exec_us_per_login": r["redis_usec_per_flow_total"],
            "redis_exec_us_by_command": r["redis_usec_per_flow"],
            "redis_cpu_us_per_login": r["redis_cpu_us_per_flow"],
            "net_to_redis_bytes_per_login": r["redis_net_in_bytes_per_flow"],
            "net_from_redis_bytes_per_login": r["redis_net_out_bytes_per_flow"],
            "loadavg": r["loadavg"],
        }

    def steps(label):
        r = results.get(label)
        return {"per_step_us": r["server_cpu_us_per_step"], "per_login_us": r["server_cpu_us_per_flow"],
                "loadavg": r["loadavg"]} if r else None

    memory = {}
    # Records are counted from the keys left (a few more flows than --count finish): a pushed
    # request is one key, a login in flight two (the request and its claim), a session one.
    keys_per_record = {"pushed-request": 1, "in-flight-login": 2, "sso-session": 1}
    for m in rows(out / "memory.jsonl"):
        records = m["keys"] / keys_per_record[m["kind"]]
        per = (m["used_memory_after"] - m["used_memory_before"]) / records
        memory.setdefault(m["kind"], {})[str(m["n"])] = {
            "bytes_each": round(per, 1),
            "records": int(records),
            "loadavg": m["loadavg"],
        }
        if "used_memory_with_markers" in m:
            marker = (m["used_memory_with_markers"] - m["used_memory_after"]) / records
            memory.setdefault("code-used-marker", {})[str(m["n"])] = {
                "bytes_each": round(marker, 1), "records": int(records), "loadavg": m["loadavg"]}
    machine = (out / "machine.txt").read_text() if (out / "machine.txt").exists() else ""
    return {
        "source": str(out),
        "machine": machine.strip().splitlines(),
        "sso": login("cap-sso"),
        "password": login("cap-password"),
        "push": login("cap-push"),
        "sso_steps_one_at_a_time": steps("cap-sso-steps"),
        "password_steps_one_at_a_time": steps("cap-password-steps"),
        # DPoP logins (issue 13) are not built yet: measure them the same way once they exist
        # (a loadgen scenario `dpop`), put the row here, and the table gains its line.
        "dpop": None,
        "value_bytes": json.loads((out / "sizes.json").read_text()) if (out / "sizes.json").exists() else None,
        "memory": memory,
        "cluster": rows(out / "cluster.jsonl"),
    }


# ---------------------------------------------------------------------------------------
# size: the sizing table


def fmt(x, digits=0):
    return f"{x:,.{digits}f}"


def size(cap, o):
    lines = []
    w = lines.append
    sso = cap["sso"]
    mem = cap["memory"]
    big = lambda kind: mem[kind][max(mem[kind], key=int)]["bytes_each"]  # noqa: E731
    par_cpu = sso["par_server_cpu_us_per_login"]
    redis_cpu = sso["redis_cpu_us_per_login"]
    net = sso["net_to_redis_bytes_per_login"] + sso["net_from_redis_bytes_per_login"]
    session_b = big("sso-session")
    marker_b = big("code-used-marker") if "code-used-marker" in mem else 0
    inflight_b = big("in-flight-login")

    w("### Inputs (measured)\n")
    w(f"- par-server CPU per SSO login: **{fmt(par_cpu)} µs** (c = {sso['connections']}, load {sso['loadavg']})")
    w(f"- Redis CPU per SSO login (process, incl. network I/O): **{fmt(redis_cpu, 1)} µs**; "
      f"executing commands alone: {fmt(sso['redis_exec_us_per_login'], 1)} µs "
      f"({fmt(sso['redis_commands_per_login'], 1)} commands)")
    w(f"- bytes between a replica and Redis per SSO login: **{fmt(net)} B** "
      f"({fmt(sso['net_to_redis_bytes_per_login'])} to Redis, {fmt(sso['net_from_redis_bytes_per_login'])} back)")
    w(f"- Redis memory: SSO session **{fmt(session_b)} B**, login in flight {fmt(inflight_b)} B, "
      f"code used-marker {fmt(marker_b)} B (largest measured point)")
    if cap.get("password"):
        w(f"- par-server CPU per password login: {fmt(cap['password']['par_server_cpu_us_per_login'])} µs "
          "(argon2id m=19456 KiB, t=2, p=1)")
    w(f"- DPoP logins: {'not measured yet (issue 13)' if not cap.get('dpop') else fmt(cap['dpop']['par_server_cpu_us_per_login']) + ' µs'}")
    w("")
    w("### Rules (options of `bench/capacity.py size`)\n")
    w(f"- CPU is planned to at most **{o.target_util:.0%}** utilisation (the headroom rule: a zone or "
      "a replica can fail, and spikes need room); replicas have "
      f"{o.vcpu_per_replica} vCPU, at least {o.min_replicas}.")
    w(f"- A Redis primary may use {o.primary_cpu} core at that utilisation and hold "
      f"{o.primary_memory_gb} GB of data; each primary has one replica (same size).")
    w(f"- Live state per login/s: the code's used-marker lives {o.marker_secs} s "
      "(`tokens.access_token_lifetime`); a login's own records live well under a second.")
    w("")
    w("### Sizing\n")
    w("| load | par-server vCPU | replicas | Redis CPU (cores) | Redis data | primaries (+1 replica each) | replica↔Redis network | first limit |")
    w("|---|---:|---:|---:|---:|---:|---:|---|")
    for rate in o.rates:
        vcpu = rate * par_cpu / 1e6 / o.target_util
        replicas = max(o.min_replicas, math.ceil(vcpu / o.vcpu_per_replica))
        rcores = rate * redis_cpu / 1e6
        data_gb = rate * o.marker_secs * marker_b / 1e9
        by_cpu = math.ceil(rcores / (o.primary_cpu * o.target_util))
        by_mem = math.ceil(data_gb / o.primary_memory_gb)
        primaries = max(1, by_cpu, by_mem)
        mbit = rate * net * 8 / 1e6
        limit = "Redis CPU" if by_cpu >= by_mem else "Redis memory"
        if primaries == 1:
            limit = "par-server CPU (one primary is enough)"
        w(f"| {fmt(rate)} SSO logins/s | {fmt(vcpu, 1)} | {replicas} × {o.vcpu_per_replica} vCPU | "
          f"{fmt(rcores, 2)} | {fmt(data_gb, 2)} GB | {primaries} | {fmt(mbit)} Mbit/s | {limit} |")
    data_gb = o.sessions * session_b / 1e9
    primaries = max(1, math.ceil(data_gb / o.primary_memory_gb))
    w(f"| {fmt(o.sessions)} concurrent SSO sessions | – | – | – | {fmt(data_gb, 1)} GB | {primaries} | – | Redis memory |")
    w("| DPoP logins (issue 13) | – | – | – | – | – | – | not measured yet |")
    w("")
    per_primary = [n for r in cap.get("cluster", []) if r.get("cluster") for n in r["nodes"]]
    if per_primary:
        best = max(n["logins_per_sec"] / max(n["redis_cpu_utilisation"], 1e-9) for n in per_primary)
        w(f"One Redis core serves about {fmt(1e6 / redis_cpu)} SSO logins/s by the per-login CPU above; the "
          f"cluster runs of this machine imply {fmt(best)} per fully busy primary core.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sizes")
    s.add_argument("monitor")
    m = sub.add_parser("measure")
    m.add_argument("outdir")
    z = sub.add_parser("size")
    z.add_argument("capacity_json")
    z.add_argument("--target-util", type=float, default=0.5)
    z.add_argument("--vcpu-per-replica", type=int, default=2)
    z.add_argument("--min-replicas", type=int, default=3)
    z.add_argument("--primary-cpu", type=float, default=1.0)
    z.add_argument("--primary-memory-gb", type=float, default=8.0)
    z.add_argument("--rates", type=lambda v: [int(x) for x in v.split(",")], default=[1000, 10000, 100000])
    z.add_argument("--sessions", type=int, default=10_000_000)
    z.add_argument("--marker-secs", type=int, default=600)
    a = ap.parse_args()
    if a.cmd == "sizes":
        print(json.dumps(sizes(a.monitor)))
    elif a.cmd == "measure":
        print(json.dumps(measure(a.outdir), indent=1))
    else:
        print(size(json.loads(Path(a.capacity_json).read_text()), a))


if __name__ == "__main__":
    main()
