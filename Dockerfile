# sluice container image: build in a Rust image, run in a slim Debian as a non-root
# user with the store on the /data volume. docs/deploy.md says what was verified.
#   docker build -t sluice .
#   docker run -p 8080:8080 -v sluice-data:/data --env-file deploy/secrets.env sluice

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice \
 && strip target/release/sluice

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin sluice \
 && mkdir -p /data /etc/sluice \
 && chown sluice:sluice /data
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY config/production.example.toml /etc/sluice/sluice.toml
# The example's values for a host install, adjusted for a container: listen on every
# interface, the store on the volume, no proxy trusted until one is configured.
ENV SLUICE__SERVER__BIND=0.0.0.0:8080 \
    SLUICE__STORE__PATH=/data \
    SLUICE__SERVER__TRUSTED_PROXIES=""
USER sluice
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM: graceful stop (sessions told "restarting", everything durable).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["--config", "/etc/sluice/sluice.toml"]
