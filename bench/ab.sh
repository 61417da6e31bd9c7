# Sourced by bench/run.sh --ab: the current build against another par-server binary
# (AB_BASE, e.g. a release build of an older commit), in one run on one Redis, rounds
# interleaved (base, new, base, new, …) so machine noise hits both alike. Per round: PAR
# pushes and SSO logins at c=64 for $SECS s each. Prints, per scenario and binary, the median
# flows/s and server CPU per flow, and the ratio new/base.
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p par-server)
#   AB_BASE=/tmp/base/target/release/par-server bench/run.sh --ab
#
# Environment: AB_BASE (required), AB_ROUNDS (default 3), BENCH_SECS.
: "${AB_BASE:?AB_BASE must name the par-server binary to compare against}"
ROUNDS=${AB_ROUNDS:-3}
NEW_BIN=$BIN
# The base may predate keys of this run's configuration: it gets the file without the
# sections and client keys it does not know (limits, refresh grants; ab uses neither).
cp "$OUT/par-server.yaml" "$OUT/par-server-new.yaml"
python3 - "$OUT/par-server.yaml" "$OUT/par-server-base.yaml" <<'PY'
import sys
text = open(sys.argv[1]).read().split("\n# Every limit in force")[0]
lines = [l for l in text.splitlines() if "grant_types" not in l]
open(sys.argv[2], "w").write("\n".join(lines).replace(', "offline_access"', "") + "\n")
PY
for round in $(seq 1 "$ROUNDS"); do
  for side in base new; do
    if [ "$side" = base ]; then BIN=$(dirname "$AB_BASE"); else BIN=$NEW_BIN; fi
    cp "$OUT/par-server-$side.yaml" "$OUT/par-server.yaml"
    start_par
    for s in push sso; do
      lg_par "$s" 64 "ab-$side-$s" --warmup 1
      redis-cli -p "$REDIS_PORT" flushall >/dev/null
    done
    stop "$PAR_PID"
  done
done
BIN=$NEW_BIN
cp "$OUT/par-server-new.yaml" "$OUT/par-server.yaml"
python3 - "$RESULTS" <<'PY' | tee "$OUT/ab.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(side, scenario, key):
    xs = [r[key] for r in rows if r.get("label") == f"ab-{side}-{scenario}" and r.get(key) is not None]
    return statistics.median(xs) if xs else float("nan")
print("| scenario | base flows/s | new flows/s | new/base | base CPU µs/flow | new CPU µs/flow | new/base |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in ("push", "sso"):
    bt, nt = med("base", s, "flows_per_sec"), med("new", s, "flows_per_sec")
    bc, nc = med("base", s, "server_cpu_us_per_flow"), med("new", s, "server_cpu_us_per_flow")
    print(f"| {s} | {bt:,.0f} | {nt:,.0f} | {nt/bt:.2f} | {bc:.0f} | {nc:.0f} | {nc/bc:.2f} |")
PY
log "A/B: $OUT/ab.txt"
