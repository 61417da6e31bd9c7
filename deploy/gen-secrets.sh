#!/usr/bin/env bash
# For operators who bring their own key to the compose stack (which otherwise makes one itself
# with `par-server gen-key`, docs/deployment.md "Keys"):
#   deploy/secrets/signing-key.pem   ES256 (P-256) signing key, PKCS#8 PEM
# used with  docker compose -f docker-compose.yml -f deploy/compose.own-key.yml up
# Existing files are kept (re-running is safe); pass --force to replace them, or put your own
# PKCS#8 key there instead. The output is gitignored: never commit it. Kubernetes gets its key
# from a Secret instead (k8s/).
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets"
force=false
[[ "${1:-}" == "--force" ]] && force=true

mkdir -p "$dir"
# The directory keeps other host users out. The key file itself is world-readable because the
# compose stack bind-mounts it into containers that run as uid 65532, not as its owner.
chmod 0700 "$dir"

key="$dir/signing-key.pem"
if [[ -s "$key" && "$force" == false ]]; then
    echo "keep     $key (use --force to replace)"
else
    umask 077
    tmp="$(mktemp "$dir/.signing-key.XXXXXX")"
    # genpkey writes PKCS#8 ("BEGIN PRIVATE KEY"), which is what keys[].pem_file expects.
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$key"
    echo "wrote    $key"
fi
openssl pkey -in "$key" -noout -check >/dev/null
