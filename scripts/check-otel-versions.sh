#!/usr/bin/env bash
# Fails when the dependency tree holds two copies of opentelemetry or tracing-opentelemetry.
# Such a mix compiles without a warning but silently drops incoming `traceparent` headers
# (docs/observability.md, "Trace context"). For .ci/run, before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# `cargo tree -d` prints each duplicated crate unindented, once per version.
dupes=$(cargo tree -d -e normal 2>/dev/null | grep -E '^(opentelemetry|opentelemetry_sdk|tracing-opentelemetry) ' | sort -u || true)
if [ -n "$dupes" ]; then
    echo "two versions of the OpenTelemetry stack in the tree:" >&2
    echo "$dupes" >&2
    exit 1
fi
echo "opentelemetry stack: one version ($(cargo tree -e normal -i opentelemetry --depth 0 --prefix none 2>/dev/null | head -1))"
