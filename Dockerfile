# syntax=docker/dockerfile:1
# The natsregion operator as a static (musl) binary on distroless/static:
# no shell, no package manager, runs as uid 65532.
#
#   docker build -t natsregion:dev --build-arg NATSREGION_COMMIT=$(git rev-parse --short HEAD) .
#
# The build context has no .git: NATSREGION_COMMIT is the commit that
# `natsregion --version` prints ("unknown" without it).
# Builds for the platform it runs on (docker buildx --platform linux/arm64 works
# through emulation).

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# ring's C and assembly for the musl target go through musl-gcc.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc
# The musl target of this machine's architecture (x86_64 or aarch64).
RUN echo "$(uname -m)-unknown-linux-musl" > /target \
 && rustup target add "$(cat /target)"

# Dependencies first, in their own layer: rebuilt only when Cargo.toml or
# Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --target "$(cat /target)" \
 && rm -rf src

COPY build.rs ./
COPY src ./src
ARG NATSREGION_COMMIT=unknown
ENV NATSREGION_COMMIT=$NATSREGION_COMMIT
# Touch so cargo rebuilds the crate over the placeholder built above.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target "$(cat /target)" --bin natsregion \
 && cp "target/$(cat /target)/release/natsregion" /natsregion \
 && /natsregion --version

FROM gcr.io/distroless/static:nonroot
COPY --from=build /natsregion /usr/local/bin/natsregion
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/natsregion"]
CMD ["run"]
