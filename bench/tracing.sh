#!/usr/bin/env bash
# Throughput cost of tracing on POST /oauth2/par (docs/benchmarks.md, "Tracing cost").
# par-server (release) + redis-server + the OTLP sink (examples/otlp_sink.rs), all on loopback;
# wrk drives bench/par.lua. Each mode runs RUNS times for DURATION; the median req/s is reported.
#
#   bench/tracing.sh                     # all modes
#   MODES="off full" RUNS=1 bench/tracing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
MODES=${MODES:-"off full tenth full-tuned"}
PORT=${PORT:-28180}; REDIS_PORT=${REDIS_PORT:-26399}; SINK=${SINK:-127.0.0.1:24318}

command -v wrk >/dev/null || { echo "apt-get install -y wrk" >&2; exit 2; }
cargo build --release --bin par-server --example otlp_sink >&2
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >/dev/null &
pids+=($!)
target/release/examples/otlp_sink $SINK >"$tmp/sink.log" &
pids+=($!)
hash=$(echo -n "bench-user-password" | target/release/par-server hash-password)
sleep 0.5

config() { # $1 = telemetry yaml (flow style)
  cat >"$tmp/par.yaml" <<YAML
issuer: http://127.0.0.1:$PORT
http: { bind: "127.0.0.1:$PORT" }
redis: { url: "redis://127.0.0.1:$REDIS_PORT" }
log: { format: json, level: warn }
telemetry: $1
clients:
  - client_id: bench
    client_secret: "bench-secret-0123456789"
    redirect_uris: ["http://127.0.0.1:9000/callback"]
users:
  - username: u
    password_hash: "$hash"
YAML
}

run_mode() { # $1 = label for the table; env for the server comes from the caller
  local name=$1 rates=() p50s=() p99s=() errs=0
  target/release/par-server --config "$tmp/par.yaml" 2>>"$tmp/server.stderr" &
  local srv=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.05; done
  wrk -t1 -c$CONNECTIONS -d2s -s bench/par.lua "http://127.0.0.1:$PORT/oauth2/par" >/dev/null # warm-up
  for _ in $(seq "$RUNS"); do
    out=$(wrk -t1 -c$CONNECTIONS -d"$DURATION" -s bench/par.lua "http://127.0.0.1:$PORT/oauth2/par")
    rates+=("$(awk '/Requests\/sec/ {print $2}' <<<"$out")")
    p50s+=("$(awk '/^p50_ms/ {print $2}' <<<"$out")")
    p99s+=("$(awk '/^p99_ms/ {print $2}' <<<"$out")")
    errs=$((errs + $(awk '/^status_errors/ {print $2}' <<<"$out") + $(grep -c 'Socket errors' <<<"$out" || true)))
  done
  local rss; rss=$(awk '/VmHWM/ {print $2}' /proc/$srv/status 2>/dev/null || echo 0)
  kill -INT $srv; wait $srv 2>/dev/null || true
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$(median "${rates[@]}")" \
    "$(printf '%s ' "${rates[@]}")" "$(median "${p50s[@]}")" "$(median "${p99s[@]}")" "$((rss / 1024)) MiB" "$errs"
}

echo "| mode | req/s (median) | runs | p50 ms | p99 ms | peak RSS | errors |"
echo "|---|---|---|---|---|---|---|"
for mode in $MODES; do
  case $mode in
    off)   config "{}"; run_mode off ;;
    full)  config "{ otlp_endpoint: \"http://$SINK\", sampling_ratio: 1.0 }"; run_mode "full (1.0)" ;;
    tenth) config "{ otlp_endpoint: \"http://$SINK\", sampling_ratio: 0.1 }"; run_mode "0.1" ;;
    full-tuned)
      config "{ otlp_endpoint: \"http://$SINK\", sampling_ratio: 1.0 }"
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2048 OTEL_BSP_MAX_QUEUE_SIZE=16384 OTEL_BSP_SCHEDULE_DELAY=1000 \
        run_mode "full (1.0), batch 2048 / queue 16384" ;;
  esac
done
echo "sink: $(tail -1 "$tmp/sink.log")" >&2
