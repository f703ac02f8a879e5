# The zone server's image, built by docker-compose.yml (docs/operations.md, "Containers").
# Two stages: the first has the Rust toolchain and builds the release binary; the image that runs
# holds that binary only, on a distroless glibc base (no shell, no package manager), as a
# non-root user. Checked by tests/tests/deploy_files.rs; no container engine runs in CI.
FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bitacora-server \
    && mkdir -p /out/datos \
    && cp target/release/bitacora-server /out/bitacora-server

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bitacora-server /usr/local/bin/bitacora-server
# The data directory (SQLite, or only a generated JWT secret with PostgreSQL), owned by the
# image's non-root user so a new named volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/datos /var/lib/bitacora
USER 65532:65532
WORKDIR /var/lib/bitacora
ENV BITACORA_DATA_DIR=/var/lib/bitacora
EXPOSE 8787
# `salud` asks GET /readyz of the server in this container (there is no curl in the image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
    CMD ["/usr/local/bin/bitacora-server", "salud"]
ENTRYPOINT ["/usr/local/bin/bitacora-server"]
CMD ["serve", "--listen", "0.0.0.0:8787"]
