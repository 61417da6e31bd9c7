#!/usr/bin/env bash
# The full chaos run (docs/operations.md, "Chaos run"): two runs of tests/chaos, one with the
# default asynchronous replication and one with `redis.wait_replicas: 1`, each with
# CHAOS_SECS (default 300) of faults: 10 minutes of faults in all, plus set-up and tails.
# CI runs the same target with 60 s per run (`cargo test --test chaos`).
#
#   bench/chaos.sh                   both runs, a fresh seed each (printed)
#   CHAOS_SEED=1234 bench/chaos.sh   replay a seed's faults
#   CHAOS_SECS=60 bench/chaos.sh     the CI length
#
# Needs redis-server, redis-cli and haproxy (scripts/test.sh installs them). Everything runs
# on 127.0.0.1. Histories, verdicts, reports and replica logs: target/tmp/chaos/<run>-seed<seed>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHAOS_SECS=${CHAOS_SECS:-300}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test --test chaos chaos_ -- --nocapture --test-threads 1
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
