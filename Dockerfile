# Multi-stage build: compile in the Rust image, run on a slim Debian with only the binary.
# SQLite and libpq are bundled and linked statically, so the runtime image needs no database
# libraries.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY migrations migrations
COPY src src
RUN cargo build --release --locked --bin tavana

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tavana --create-home tavana
COPY --from=build /src/target/release/tavana /usr/local/bin/tavana
USER tavana
WORKDIR /var/lib/tavana
ENV TAVANA_BIND=0.0.0.0:8080 \
    TAVANA_LOG_FORMAT=json
EXPOSE 8080
# Migrations run at start-up; SIGTERM lets in-flight requests finish.
ENTRYPOINT ["/usr/local/bin/tavana"]
CMD ["serve"]
