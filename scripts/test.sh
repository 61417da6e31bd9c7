#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need from Debian's packages when
# missing (redis-server, redis-cli for Cluster set-up, haproxy and openssl for the scale and
# TLS tests, chromium and its driver for the browser walk-through; sentinels run as
# `redis-server --sentinel`), then runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo test --all-targets "$@"
