# par-server container image (docs/deployment.md).
#
#   docker build -t par-server .                       # compile inside (rust:1.95-slim-bookworm)
#   cargo build --release --locked && \
#   docker build --build-arg BIN_FROM=prebuilt -t par-server .   # copy target/release/par-server
#
# BIN_FROM selects where the binary comes from: "build" (default, compiled in the build stage
# with cached cargo registry and target directories) or "prebuilt" (the host's
# target/release/par-server; what CI does, .ci/containers.sh). The host binary must be built
# for the runtime's glibc (Debian 12 / bookworm, glibc 2.36) or older. With buildah/podman pass
# --build-arg BIN_FROM explicitly either way (buildah 1.28 skips the default stage otherwise).
#
# No "# syntax=" line on purpose: BuildKit's built-in frontend handles RUN --mount, and
# offline builders cannot pull a frontend image.
ARG BIN_FROM=build

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The registry and target/ live in cache mounts, so a source-only change rebuilds par-server and
# not its ~400 dependencies. The binary is copied out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
 && install -D -m 0755 target/release/par-server /out/par-server

FROM scratch AS prebuilt
COPY target/release/par-server /out/par-server

# hadolint ignore=DL3006
FROM ${BIN_FROM} AS bin

# Runtime: glibc, libgcc, libssl, CA certificates, tzdata; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="par-server" \
      org.opencontainers.image.description="OAuth 2.0 / OpenID Connect login with Pushed Authorization Requests (RFC 9126)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=bin --chown=0:0 --chmod=0555 /out/par-server /usr/local/bin/par-server
# /var/lib/par-server/keys, owned by 65532: where `par-server gen-key` writes the signing key in
# the compose stack. A new named volume mounted there takes this directory's owner, so the
# non-root keygen can write to it. "keys" is an entry of the copied directory (not the
# destination itself), so --chown applies to it with every builder.
COPY --chown=65532:65532 deploy/var-lib-par-server/ /var/lib/par-server/
# Listen on all interfaces inside the container; everything else comes from the mounted
# config file (PAR_CONFIG) and PAR__SECTION__KEY variables. Nothing secret is in the image.
ENV PAR__HTTP__BIND=0.0.0.0:8080 \
    PAR_CONFIG=/etc/par-server/config.yaml
# Numeric, so runAsNonRoot can verify it without /etc/passwd. Nothing is written to the root
# filesystem: it may be mounted read-only.
USER 65532:65532
EXPOSE 8080
# The binary probes itself (no shell or curl in distroless): GET /healthz, exit 0 on 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/par-server", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/par-server"]
CMD ["run"]
