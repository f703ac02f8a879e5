# The zone server image used by docker-compose.yml.
FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p bitacora-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/bitacora bitacora \
    && mkdir -p /var/lib/bitacora && chown bitacora /var/lib/bitacora
COPY --from=build /src/target/release/bitacora-server /usr/local/bin/bitacora-server
USER bitacora
EXPOSE 8787
CMD ["bitacora-server", "serve"]
