#!/usr/bin/env bash
# par-server benchmarks, one command: builds release, starts its own redis-server, par-server,
# the reference targets and the peer (panva/oidc-provider), runs every load and writes
# results + markdown tables + a plot to bench/out/<timestamp>/ (docs/benchmarks.md).
#
#   bench/run.sh            full run (~25 min including a 10-minute RSS soak)
#   bench/run.sh --smoke    ~35 s of load; fails only on request errors, never on speed
#   bench/run.sh --no-soak  full run without the soak
#   bench/run.sh --no-peer  skip oidc-provider (no npm needed)
#   bench/run.sh --log-ab   only the log-level A/B: info (the default) and warn (benchmark
#                           config) interleaved, AB_ROUNDS rounds (default 2) of push and SSO at c=64
#   bench/run.sh --capacity per-login cost, Redis memory per record, Redis Cluster scaling
#                           (bench/capacity.sh, 10-15 min) and the sizing table (bench/capacity.py)
#   bench/run.sh --limits-ab only the limits A/B: the bare handler, every limit in force (never
#                           hit) and every limit off, interleaved, AB_ROUNDS rounds of push and SSO
#   bench/run.sh --ab       this build against AB_BASE (another par-server binary), interleaved
#                           rounds of PAR and SSO at c=64 (bench/ab.sh)
#
# Environment: BENCH_SECS (seconds per measured point, default 10), BENCH_CONNS (concurrency
# levels, default "1 16 64 256"), SOAK_SECS (default 600). All load goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=full
SOAK=1
PEER=1
for a in "$@"; do
  case $a in
    --smoke) MODE=smoke ;;
    --no-soak) SOAK=0 ;;
    --no-peer) PEER=0 ;;
    --capacity) MODE=capacity ;;
    --log-ab) MODE=log-ab ;;
    --limits-ab) MODE=limits-ab ;;
    --ab) MODE=ab ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-"1 16 64 256"}
SOAK_SECS=${SOAK_SECS:-600}

OUT=$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)-$MODE
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

log() { echo "== $*" | tee -a "$OUT/run.log"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "not answering: $1" >&2
  return 1
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Stop one process we started and wait for it.
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

if [ "${BENCH_BUILD:-1}" = 1 ]; then # BENCH_BUILD=0: use the binaries already in target/release
  log "build (release)"
  cargo build --release --locked -p par-server --bin par-server 2>&1 | tail -1
  cargo build --release --locked -p loadgen --bins 2>&1 | tail -1
fi
BIN=$ROOT/target/release
LOADGEN=$BIN/loadgen
# PAR_SERVER_BIN: another par-server binary to measure (e.g. a copy of an earlier build);
# read at each start, as --ab switches BIN between rounds.
par_bin() { echo "${PAR_SERVER_BIN:-$BIN/par-server}"; }

# ---- Redis: our own, on a free port
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT" \
  --logfile "$OUT/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# ---- par-server: same client and user as the peer
CLIENT_ID=bench-app
CLIENT_SECRET=bench-secret-0123456789
REDIRECT_URI=http://127.0.0.1:9000/callback
USERNAME=alice
PASSWORD=bench-password
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT/signing.pem" 2>/dev/null
HASH=$(printf %s "$PASSWORD" | "$(par_bin)" hash-password)
PAR_PORT=$(free_port)
cat >"$OUT/par-server.yaml" <<EOF
issuer: "http://127.0.0.1:$PAR_PORT"
http: { bind: "127.0.0.1:$PAR_PORT" }
redis: { url: "$REDIS_URL" }
log: { level: "${PAR_LOG_LEVEL:-warn}" }
keys:
  - { alg: ES256, pem_file: "$OUT/signing.pem", active: true }
clients:
  - client_id: "$CLIENT_ID"
    client_secret: "$CLIENT_SECRET"
    redirect_uris: ["$REDIRECT_URI"]
    scopes: ["openid", "email", "profile", "offline_access"]
    grant_types: ["authorization_code", "refresh_token"]
users:
  - username: "$USERNAME"
    password_hash: "$HASH"
    email: "alice@example.com"
    name: "Alice"
# Every limit in force (one more Redis script per limit, sent together) but never hit: the
# load comes from one address and one client, thousands of times what a real one sends
# (docs/operations.md, "Limits"). Section 3 also measures them against all of them off.
limits:
  par_per_client: { requests: 100000000, per_secs: 60 }
  token_per_client: { requests: 100000000, per_secs: 60 }
  par_per_address: { requests: 100000000, per_secs: 60 }
  token_per_address: { requests: 100000000, per_secs: 60 }
  authorize_per_address: { requests: 100000000, per_secs: 60 }
  login_per_address: { requests: 100000000, per_secs: 60 }
  outstanding_per_client: 100000000
EOF
# The same server with every limit off.
LIMITS_OFF=(PAR__LIMITS__PAR_PER_CLIENT__REQUESTS=0 PAR__LIMITS__TOKEN_PER_CLIENT__REQUESTS=0
  PAR__LIMITS__PAR_PER_ADDRESS__REQUESTS=0 PAR__LIMITS__TOKEN_PER_ADDRESS__REQUESTS=0
  PAR__LIMITS__AUTHORIZE_PER_ADDRESS__REQUESTS=0 PAR__LIMITS__LOGIN_PER_ADDRESS__REQUESTS=0
  PAR__LIMITS__OUTSTANDING_PER_CLIENT=0 PAR__LIMITS__OUTSTANDING_PER_PUBLIC_ADDRESS=0)

PAR_PID=
start_par() { # extra env assignments...
  env "$@" "$(par_bin)" --config "$OUT/par-server.yaml" 2>>"$OUT/par-server.log" &
  PAR_PID=$!
  PIDS+=("$PAR_PID")
  wait_http "http://127.0.0.1:$PAR_PORT/readyz"
}

# loadgen against par-server: scenario conns label [more args]
lg_par() {
  local scenario=$1 c=$2 label=$3
  shift 3
  "$LOADGEN" --addr "127.0.0.1:$PAR_PORT" --target par-server --scenario "$scenario" -c "$c" \
    -d "${LG_SECS:-$SECS}" --redis "$REDIS_URL" --pid "$PAR_PID" --label "$label" --json "$RESULTS" \
    --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --redirect-uri "$REDIRECT_URI" \
    --username "$USERNAME" --password "$PASSWORD" "$@" | tee -a "$OUT/run.log"
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel: $(uname -sr)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc --version)"
  echo "redis: $(redis-server --version | cut -d' ' -f3)"
  echo "node: $(node --version 2>/dev/null || echo none)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

if [ "$MODE" = capacity ]; then
  # shellcheck source=bench/capacity.sh
  . "$ROOT/bench/capacity.sh"
  exit 0
fi

# The default configuration (log.level info) against the benchmark's (warn), same run,
# interleaved (info, warn, info, warn, ...) so drift from other load on the box hits both.
# PAR__LOG__FORMAT=json in the environment measures the JSON format instead of pretty.
log_ab() {
  local round lvl s
  for round in $(seq 1 "${AB_ROUNDS:-2}"); do
    for lvl in info warn; do
      log "log level $lvl, round $round (c=64)"
      start_par PAR__LOG__LEVEL=$lvl ${PAR__LOG__FORMAT:+PAR__LOG__FORMAT=$PAR__LOG__FORMAT}
      for s in push sso; do
        lg_par "$s" 64 "par-server-$s-log-$lvl"
        redis-cli -p "$REDIS_PORT" flushall >/dev/null
      done
      stop "$PAR_PID"
    done
  done
}

# Limits in force (never hit) against all off and the bare handler, same run, interleaved:
# issue 12's targets are push ≥ 85 % of the bare handler, SSO within 10 % of limits off.
bare_push() { # label
  local port pid
  port=$(free_port)
  "$BIN/bare_par" "127.0.0.1:$port" "$REDIS_URL" "$CLIENT_ID" "$CLIENT_SECRET" 2>>"$OUT/bare.log" &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/hello"
  "$LOADGEN" --addr "127.0.0.1:$port" --target bare --scenario push -c 64 -d "$SECS" \
    --redis "$REDIS_URL" --pid "$pid" --label "$1" --json "$RESULTS" \
    --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" | tee -a "$OUT/run.log"
  stop "$pid"
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
}
limits_ab() {
  local round run s
  for round in $(seq 1 "${AB_ROUNDS:-2}"); do
    log "limits A/B round $round: bare handler"
    bare_push bare-push-limits
    for run in on off; do
      log "limits $run, round $round (c=64)"
      if [ "$run" = off ]; then start_par "${LIMITS_OFF[@]}"; else start_par; fi
      for s in push sso; do
        lg_par "$s" 64 "par-server-$s-limits-$run"
        redis-cli -p "$REDIS_PORT" flushall >/dev/null
      done
      stop "$PAR_PID"
    done
  done
}

if [ "$MODE" = limits-ab ]; then
  limits_ab
  python3 bench/report.py "$OUT"
  echo "results in $OUT (report.md)"
  exit 0
fi

if [ "$MODE" = log-ab ]; then
  log_ab
  python3 bench/report.py "$OUT"
  echo "results in $OUT (report.md)"
  exit 0
fi

if [ "$MODE" = ab ]; then
  # shellcheck source=bench/ab.sh
  . "$ROOT/bench/ab.sh"
  exit 0
fi

if [ "$MODE" = smoke ]; then
  start_par
  SECS=5
  for s in push sso password; do
    lg_par "$s" 4 "smoke-$s" --warmup 1 --fail-on-error
  done
  lg_par sso 4 "smoke-sso-dpop" --warmup 1 --fail-on-error --dpop
  lg_par refresh 4 "smoke-refresh" --warmup 1 --fail-on-error --scope "openid offline_access" --dpop
  log "smoke: OK ($OUT)"
  exit 0
fi

# ---- 1. the store's ceiling
log "redis-benchmark"
for c in 64; do
  redis-benchmark -p "$REDIS_PORT" -c "$c" -n 400000 -t set,get --csv -q >"$OUT/redis-benchmark-c$c.csv"
  cat "$OUT/redis-benchmark-c$c.csv"
done
redis-cli -p "$REDIS_PORT" flushall >/dev/null

# ---- 2. the bare handler and the HTTP ceiling
BARE_PORT=$(free_port)
"$BIN/bare_par" "127.0.0.1:$BARE_PORT" "$REDIS_URL" "$CLIENT_ID" "$CLIENT_SECRET" 2>>"$OUT/bare.log" &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_http "http://127.0.0.1:$BARE_PORT/hello"
log "bare handler"
"$LOADGEN" --addr "127.0.0.1:$BARE_PORT" --target bare --scenario push -c 64 -d "$SECS" \
  --redis "$REDIS_URL" --pid "$BARE_PID" --label bare-push --json "$RESULTS" \
  --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" | tee -a "$OUT/run.log"
PUSH_BODY="response_type=code&client_id=$CLIENT_ID&redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fcallback&scope=openid%20email%20profile&state=xyz&nonce=n-0S6_WzA2Mj&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
BASIC=$(printf %s "$CLIENT_ID:$CLIENT_SECRET" | base64 -w0)
cat >"$OUT/par.lua" <<EOF
wrk.method = "POST"
wrk.body = "$PUSH_BODY"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
EOF
log "wrk bare /hello and /par"
wrk -t2 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$BARE_PORT/hello" >"$OUT/wrk-bare-hello.txt"
wrk -t2 -c64 -d"${SECS}s" --latency -s "$OUT/par.lua" "http://127.0.0.1:$BARE_PORT/par" >"$OUT/wrk-bare-par.txt"
stop "$BARE_PID"
redis-cli -p "$REDIS_PORT" flushall >/dev/null

# ---- 3. par-server
start_par
sleep 1
echo "$(rss_kib "$PAR_PID")" >"$OUT/par-rss-idle-kib.txt"
log "wrk par-server POST /oauth2/par"
wrk -t2 -c64 -d"${SECS}s" --latency -s "$OUT/par.lua" "http://127.0.0.1:$PAR_PORT/oauth2/par" >"$OUT/wrk-par.txt"
redis-cli -p "$REDIS_PORT" flushall >/dev/null
log "par-server sweeps"
for s in push sso; do
  for c in $CONNS; do
    lg_par "$s" "$c" "par-server-$s"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
  done
done
for c in 2 8 32; do
  lg_par password "$c" "par-server-password"
done
log "DPoP-bound SSO logins (proof at PAR and token) and refresh grants (rotation), c=64"
lg_par sso 64 "par-server-sso-dpop" --dpop
redis-cli -p "$REDIS_PORT" flushall >/dev/null
lg_par refresh 64 "par-server-refresh" --scope "openid offline_access"
lg_par refresh 64 "par-server-refresh-dpop" --scope "openid offline_access" --dpop
redis-cli -p "$REDIS_PORT" flushall >/dev/null
log "Redis commands per flow (exact: one client, 500 flows; MONITOR shows which are round trips)"
for s in push sso password; do
  redis-cli -p "$REDIS_PORT" monitor >"$OUT/monitor-par-server-$s.txt" &
  MON_PID=$!
  LG_SECS=120 lg_par "$s" 1 "par-server-$s-commands" --warmup 0 --count 500
  sleep 0.5
  stop "$MON_PID"
done
LG_SECS=120 lg_par sso 1 "par-server-sso-dpop-commands" --warmup 0 --count 500 --dpop
log "argon2 bound"
"$BIN/argon2_bound" 2 10 | tee "$OUT/argon2-bound.json"
echo "$(rss_kib "$PAR_PID")" >"$OUT/par-rss-after-kib.txt"
stop "$PAR_PID"
redis-cli -p "$REDIS_PORT" flushall >/dev/null

log "limits in force (never hit) vs all off vs the bare handler (c=64)"
AB_ROUNDS=1 limits_ab

log_ab

log "connection: pool vs multiplexed (c=64)"
for mode in pool multiplexed; do
  start_par PAR__REDIS__CONNECTION=$mode
  for s in push sso; do
    lg_par "$s" 64 "par-server-$s-$mode"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
  done
  stop "$PAR_PID"
done

# ---- 4. the peer: oidc-provider, one process (memory) and two (node cluster + Redis)
if [ "$PEER" = 1 ]; then
  (cd bench/peer && npm ci --no-audit --no-fund --silent)
  PEER_PORT=$(free_port)
  run_peer() { # label workers redis-url-or-empty
    local label=$1 workers=$2 url=$3
    (cd bench/peer && PORT=$PEER_PORT WORKERS=$workers REDIS_URL=$url NODE_ENV=production \
      CLIENT_ID=$CLIENT_ID CLIENT_SECRET=$CLIENT_SECRET REDIRECT_URI=$REDIRECT_URI \
      USERNAME=$USERNAME PASSWORD=$PASSWORD exec node server.js) 2>>"$OUT/peer.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration"
    sleep 1
    local pids=("--pid" "$pid")
    for child in $(pgrep -P "$pid" || true); do pids+=("--pid" "$child"); done
    echo "$label $(for p in $pid $(pgrep -P "$pid" || true); do rss_kib "$p"; done | awk '{s+=$1} END {print s}')" \
      >>"$OUT/peer-rss-idle-kib.txt"
    local redis_args=()
    [ -n "$url" ] && redis_args=(--redis "$REDIS_URL")
    for s in push sso; do
      for c in $CONNS; do
        "$LOADGEN" --addr "127.0.0.1:$PEER_PORT" --target oidc-provider --scenario "$s" -c "$c" \
          -d "$SECS" "${redis_args[@]}" "${pids[@]}" --label "$label-$s" --json "$RESULTS" \
          --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --redirect-uri "$REDIRECT_URI" \
          --username "$USERNAME" --password "$PASSWORD" | tee -a "$OUT/run.log"
        redis-cli -p "$REDIS_PORT" flushall >/dev/null
      done
    done
    if [ -n "$url" ]; then
      for s in push sso; do
        "$LOADGEN" --addr "127.0.0.1:$PEER_PORT" --target oidc-provider --scenario "$s" -c 1 \
          --warmup 0 --count 500 -d 120 "${redis_args[@]}" --label "$label-$s-commands" --json "$RESULTS" \
          --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --redirect-uri "$REDIRECT_URI" \
          --username "$USERNAME" --password "$PASSWORD" | tee -a "$OUT/run.log"
      done
    fi
    stop "$pid"
  }
  log "oidc-provider, 1 process (in-memory adapter)"
  run_peer oidc-provider-1p 1 ""
  log "oidc-provider, 2 processes (node cluster, Redis adapter)"
  run_peer oidc-provider-2p 2 "$REDIS_URL"
fi

# ---- 5. soak: 10 minutes of SSO logins at half the peak, RSS every minute
if [ "$SOAK" = 1 ]; then
  PEAK=$(python3 -c "
import json
rows=[json.loads(l) for l in open('$RESULTS')]
print(max(r['flows_per_sec'] for r in rows if r['label']=='par-server-sso'))")
  RATE=$(python3 -c "print(round($PEAK/2))")
  log "soak: ${SOAK_SECS}s of SSO logins at $RATE/s (half of $PEAK)"
  start_par
  sleep 1
  echo "0 $(rss_kib "$PAR_PID")" >"$OUT/soak-rss.txt"
  "$LOADGEN" --addr "127.0.0.1:$PAR_PORT" --target par-server --scenario sso -c 64 --rate "$RATE" \
    -d "$SOAK_SECS" --warmup 0 --redis "$REDIS_URL" --pid "$PAR_PID" --label par-server-soak \
    --json "$RESULTS" --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" \
    --redirect-uri "$REDIRECT_URI" --username "$USERNAME" --password "$PASSWORD" >"$OUT/soak.txt" &
  SOAK_PID=$!
  PIDS+=("$SOAK_PID")
  for m in $(seq 1 $((SOAK_SECS / 60))); do
    sleep 60
    echo "$m $(rss_kib "$PAR_PID")" >>"$OUT/soak-rss.txt"
  done
  wait "$SOAK_PID" || true
  sleep 2
  echo "idle $(rss_kib "$PAR_PID")" >>"$OUT/soak-rss.txt"
  cat "$OUT/soak.txt" "$OUT/soak-rss.txt"
  stop "$PAR_PID"
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
log "report"
python3 bench/report.py "$OUT"
echo "results in $OUT (report.md, throughput.svg)"
