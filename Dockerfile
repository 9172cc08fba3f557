# codex-helper as a container: `serve --team` behind a load balancer (see deploy/compose.yaml
# and README "Running a team in containers").
#
# Build stage: the release binary from the locked dependencies.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin codex-helper \
 && strip target/release/codex-helper

# Final stage: a slim Debian with CA certificates (relays are reached over TLS) and tini (so
# SIGTERM reaches the helper and it drains), run as a user of its own, never root.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/codex-helper --create-home codex-helper
COPY --from=build /src/target/release/codex-helper /usr/local/bin/codex-helper
USER codex-helper
ENV CODEX_HELPER_HOME=/var/lib/codex-helper \
    CODEX_HOME=/var/lib/codex-helper/codex
WORKDIR /var/lib/codex-helper
EXPOSE 3211
ENTRYPOINT ["tini", "--", "codex-helper"]
CMD ["serve", "--team", "--no-tui", "--host", "0.0.0.0", "--port", "3211"]
