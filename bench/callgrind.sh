#!/usr/bin/env bash
# Instructions per flow under callgrind: the same count for the same binary whatever else the
# machine is doing, so code changes can be compared on a noisy shared machine
# (docs/benchmarks.md, "Where the CPU went"). One worker; instrumentation is switched on after
# /readyz; the user's password hash uses cheap argon2 parameters (m=8, t=1: a benchmark only)
# so the load generator's sign-in does not count.
#
#   cargo build --release -p par-server -p loadgen
#   bench/callgrind.sh target/release/par-server push 400
#   bench/callgrind.sh target/release/par-server sso 400 [--dpop]
#
# Environment: EXTRA_YAML (appended to the config, e.g. a `limits:` or `telemetry:` block),
# PAR_LOG_LEVEL (default warn), BASECFG=1 (a client without refresh grants, for builds that
# predate them). Needs valgrind (callgrind_control), redis-server, openssl.
set -uo pipefail
BINP=$1; SC=$2; N=$3; shift 3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LG=$ROOT/target/release/loadgen
D=$(mktemp -d)
RP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly no --dir $D --logfile $D/redis.log & RPID=$!
sleep 0.3
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $D/signing.pem 2>/dev/null
HASH='$argon2id$v=19$m=8,t=1,p=1$8IOzzZXPhDUqY8QJY+p/BA$/IQf6PGIsah+7e14gWz1FUnGt/Utao2T/iyZYYD29cw'
cat > $D/c.yaml <<Y
issuer: "http://127.0.0.1:$PP"
http: { bind: "127.0.0.1:$PP", workers: 1 }
redis: { url: "redis://127.0.0.1:$RP" }
log: { level: "${PAR_LOG_LEVEL:-warn}" }
keys:
  - { alg: ES256, pem_file: "$D/signing.pem", active: true }
clients:
  - client_id: "bench-app"
    client_secret: "bench-secret-0123456789"
    redirect_uris: ["http://127.0.0.1:9000/callback"]
    scopes: ["openid", "email", "profile"${BASECFG:+] #}, "offline_access"]
    ${BASECFG:+#}grant_types: ["authorization_code", "refresh_token"]
users:
  - username: "alice"
    password_hash: '$HASH'
    email: "alice@example.com"
    name: "Alice"
${EXTRA_YAML:-}
Y
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$D/cg.out $BINP --config $D/c.yaml 2>$D/par.log & VPID=$!
for i in $(seq 300); do curl -fs -o /dev/null http://127.0.0.1:$PP/readyz && break; sleep 0.2; done
callgrind_control -i on $VPID >/dev/null
$LG --addr 127.0.0.1:$PP --target par-server --scenario $SC -c 4 -d 600 --count $N --warmup 0 \
  --client-id bench-app --client-secret bench-secret-0123456789 --redirect-uri http://127.0.0.1:9000/callback \
  --username alice --password bench-password "$@" > $D/lg.txt 2>&1
callgrind_control -d $VPID >/dev/null; sleep 1
kill $VPID; wait $VPID 2>/dev/null; kill $RPID
F=$(grep -m1 -oE "[0-9]+ flows," $D/lg.txt | head -1 | cut -d" " -f1)
E=$(grep -m1 -oE "[0-9]+ errors" $D/lg.txt | head -1 | cut -d" " -f1)
T=$(cat $D/cg.out* | grep -E "^summary:" | awk '{s+=$2} END {print s}')
echo "$(basename $BINP) $SC: flows=$F errors=$E instr/flow=$((T / (F>0?F:1)))  ($D)"
