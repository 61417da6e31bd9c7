# The capacity measurements (docs/capacity.md). Sourced by `bench/run.sh --capacity` after
# its set-up (release build, our own redis-server, the par-server config, start_par, lg_par,
# free_port, stop, log); not run on its own. Writes into $OUT:
#   results.jsonl   loadgen rows: par-server CPU per login and per step, Redis commands,
#                   execution µs, process CPU and bytes per login (INFO deltas)
#   sizes.json      value sizes of par-server's records (from MONITOR)
#   memory.jsonl    Redis used_memory per pushed request, in-flight login and SSO session,
#                   at 10k and 100k outstanding
#   cluster.jsonl   redis_login on a Redis Cluster of 1, 2 and 3 primaries (+ standalone)
#   capacity.json + capacity.md   from bench/capacity.py
# Every row carries the 1-minute load average; CPU per login and memory per record do not
# depend on it, throughput does.

CAP_SECS=${CAP_SECS:-10}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
flush() { rcli flushall >/dev/null; }
used_memory() { rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }

# A second user whose password hash is cheap: 100,000 password logins then measure the SSO
# sessions they leave in Redis, not argon2. The pushed requests get the longest allowed
# redemption window so 100,000 of them are still there when counted.
CHEAP_PASSWORD=cheap-password
CHEAP_HASH=$("$BIN/argon2_bound" cheap-hash "$CHEAP_PASSWORD")
cat >>"$OUT/par-server.yaml" <<EOF
  - username: "bob"
    password_hash: "$CHEAP_HASH"
    email: "bob@example.com"
par: { request_uri_lifetime: 599 }
EOF
start_par
sleep 1

log "capacity 1/4: cost per login at load (sso c=64, push c=64, password c=8; ${CAP_SECS}s each)"
LG_SECS=$CAP_SECS lg_par sso 64 cap-sso
flush
LG_SECS=$CAP_SECS lg_par push 64 cap-push
flush
LG_SECS=$CAP_SECS lg_par password 8 cap-password
flush
log "capacity 1/4: server CPU per step (one request at a time)"
LG_SECS=120 lg_par sso 1 cap-sso-steps --step-cpu --count 3000 --warmup 1
LG_SECS=120 lg_par password 1 cap-password-steps --step-cpu --count 100 --warmup 1
flush

log "capacity 2/4: value sizes (MONITOR of a few logins)"
rcli monitor >"$OUT/monitor-sizes.txt" &
MON_PID=$!
sleep 0.3
USERNAME=bob PASSWORD=$CHEAP_PASSWORD LG_SECS=30 lg_par password 1 cap-sizes-password --count 20 --warmup 0
LG_SECS=30 lg_par sso 1 cap-sizes-sso --count 20 --warmup 0
sleep 0.3
stop "$MON_PID"
python3 "$ROOT/bench/capacity.py" sizes "$OUT/monitor-sizes.txt" >"$OUT/sizes.json"
cat "$OUT/sizes.json"
flush

log "capacity 3/4: Redis memory per outstanding record (10k and 100k)"
: >"$OUT/memory.jsonl"
memory_point() { # kind n scenario [username password]
  local kind=$1 n=$2 scenario=$3
  flush
  sleep 0.5
  local before after keys
  before=$(used_memory)
  USERNAME=${4:-$USERNAME} PASSWORD=${5:-$PASSWORD} LG_SECS=600 \
    lg_par "$scenario" 32 "cap-mem-$kind-$n" --count "$n" --warmup 0 >/dev/null
  local markers=""
  if [ "$kind" = sso-session ]; then
    # A password login leaves its SSO session and the code's used-marker: count both, then
    # the sessions alone.
    markers=",\"used_memory_with_markers\":$(used_memory)"
    rcli --scan --pattern '*code:*' | xargs -r -n 1000 redis-cli -p "$REDIS_PORT" del >/dev/null
  fi
  after=$(used_memory)
  keys=$(rcli dbsize)
  echo "{\"kind\":\"$kind\",\"n\":$n,\"used_memory_before\":$before,\"used_memory_after\":$after$markers,\"keys\":$keys,\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" |
    tee -a "$OUT/memory.jsonl"
}
for n in 10000 100000; do
  memory_point pushed-request "$n" push
  memory_point in-flight-login "$n" pending
  memory_point sso-session "$n" password bob "$CHEAP_PASSWORD"
done
flush
stop "$PAR_PID"

log "capacity 4/4: the Redis part of SSO logins on a Redis Cluster of 1, 2 and 3 primaries"
SIZES=$(python3 -c "import json; s=json.load(open('$OUT/sizes.json')); print(s['par'], s['code'], s['sso'])")
read -r PAR_BYTES CODE_BYTES SSO_BYTES <<<"$SIZES"
: >"$OUT/cluster.jsonl"
drive() { # label cluster-flag node-urls...
  local label=$1 flag=$2
  shift 2
  local nodes=()
  for u in "$@"; do nodes+=(--node "$u"); done
  "$BIN/redis_login" "${nodes[@]}" $flag -c 64 -d "$CAP_SECS" --label "$label" \
    --par-bytes "$PAR_BYTES" --code-bytes "$CODE_BYTES" --sso-bytes "$SSO_BYTES" | tee -a "$OUT/cluster.jsonl"
}
flush
drive standalone "" "$REDIS_URL"
flush
for n in 1 2 3; do
  CPIDS=()
  CPORTS=()
  CBUS=()
  for i in $(seq 1 "$n"); do
    p=$(free_port)
    b=$(free_port)
    mkdir -p "$OUT/cluster-$n/$i"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT/cluster-$n/$i" \
      --cluster-enabled yes --cluster-port "$b" --cluster-config-file nodes.conf \
      --logfile "$OUT/cluster-$n/$i/redis.log" &
    CPIDS+=($!)
    PIDS+=($!)
    CPORTS+=("$p")
    CBUS+=("$b")
  done
  for p in "${CPORTS[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  # Even slot ranges (redis-cli --cluster create needs three primaries at least).
  for i in $(seq 0 $((n - 1))); do
    redis-cli -p "${CPORTS[$i]}" cluster addslotsrange $((i * 16384 / n)) $(((i + 1) * 16384 / n - 1)) >/dev/null
    [ "$i" -gt 0 ] && redis-cli -p "${CPORTS[0]}" cluster meet 127.0.0.1 "${CPORTS[$i]}" "${CBUS[$i]}" >/dev/null
  done
  for _ in $(seq 1 100); do
    ok=1
    for p in "${CPORTS[@]}"; do
      redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.2
  done
  URLS=()
  for p in "${CPORTS[@]}"; do URLS+=("redis://127.0.0.1:$p"); done
  drive "cluster-$n" --cluster "${URLS[@]}"
  for pid in "${CPIDS[@]}"; do stop "$pid"; done
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
log "capacity model"
python3 "$ROOT/bench/capacity.py" measure "$OUT" >"$OUT/capacity.json"
python3 "$ROOT/bench/capacity.py" size "$OUT/capacity.json" | tee "$OUT/capacity.md"
echo "results in $OUT (capacity.json, capacity.md)"
