#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when missing: from Debian's
# packages redis-server, redis-cli for Cluster set-up, haproxy and openssl for the scale and
# TLS tests, chromium and its driver for the browser walk-through (sentinels run as
# `redis-server --sentinel`), node and python3-venv for the client libraries; from npm and
# PyPI the independent client libraries of tests/interop. Then runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v openssl >/dev/null || need+=(openssl)
command -v node >/dev/null || need+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# tests/interop: openid-client (npm, lockfile) and requests-oauth2client (PyPI, pinned).
[ -d tests/interop/js/node_modules/openid-client ] ||
    (cd tests/interop/js && npm ci --no-audit --no-fund --silent)
venv=target/interop-venv
if ! "$venv/bin/python" -c 'import requests_oauth2client' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/py/requirements.txt
fi

cargo test --all-targets "$@"
