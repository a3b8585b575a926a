# syntax=docker/dockerfile:1
# medbook's production image: one static binary (musl, without the embedded engine) on an empty base,
# running as a non-root user. Build it with `docker build -t medbook .` or `docker compose up --build`.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# musl-tools: the C compiler for the crates with C inside (aws-lc, mimalloc);
# ca-certificates: the roots the final image needs to reach DynamoDB over TLS.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
ENV CARGO_BUILD_TARGET=x86_64-unknown-linux-musl \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src

# Dependencies in a layer of their own: rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src bench \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > bench/main.rs \
    && cp bench/main.rs bench/engine.rs \
    && cargo build --release --locked --no-default-features --bin medbook \
    && rm -rf src

COPY src src
COPY migrations migrations
COPY templates templates
# COPY keeps the files' own times, which may be older than the placeholder build: make cargo see them.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --no-default-features --bin medbook \
    && cp target/x86_64-unknown-linux-musl/release/medbook /medbook \
    && /medbook --version

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /medbook /medbook
ENV MEDBOOK_ADDR=0.0.0.0:8080 \
    MEDBOOK_STORE=aws \
    MEDBOOK_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# No /etc/passwd on scratch: a numeric user (distroless' "nonroot").
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/medbook", "healthcheck"]
ENTRYPOINT ["/medbook"]
CMD ["serve"]
