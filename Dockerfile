# syntax=docker/dockerfile:1
#
# The operator image (default target):
#   docker build -t pingone-aic-operator .
# The PingOne and Advanced Identity Cloud simulators, for people who want them in a cluster:
#   docker build --target sim -t pingone-aic-sim .
#
# The operator is built from its own package (`-p pingone-aic-operator`), whose dependencies hold
# no simulator, in-process Kubernetes API or playground; those are workspace crates of their own.
# The runtime image holds the binary and nothing else.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS source
WORKDIR /src
COPY . .

FROM source AS build-operator
# The target folder is a cache mount, so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=pingone-aic-operator-release,sharing=locked \
    cargo build --release --locked -p pingone-aic-operator --bin pingone-aic-operator \
    && install -D -m 0755 target/release/pingone-aic-operator /out/pingone-aic-operator

FROM source AS build-sim
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=pingone-aic-sim-release,sharing=locked \
    cargo build --release --locked -p pingone-aic-sim --bin pingone-aic-sim \
    && install -D -m 0755 target/release/pingone-aic-sim /out/pingone-aic-sim

FROM ${RUNTIME_IMAGE} AS sim
LABEL org.opencontainers.image.title="pingone-aic-sim" \
      org.opencontainers.image.description="Stateful PingOne and Advanced Identity Cloud simulators for testing pingone-aic-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build-sim /out/pingone-aic-sim /pingone-aic-sim
USER 65532:65532
ENTRYPOINT ["/pingone-aic-sim"]

# Last, so that a plain `docker build` produces the operator image.
FROM ${RUNTIME_IMAGE} AS operator
LABEL org.opencontainers.image.title="pingone-aic-operator" \
      org.opencontainers.image.description="Kubernetes operator for PingOne worker clients and the PingOne Worker Service in PingOne Advanced Identity Cloud" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build-operator /out/pingone-aic-operator /pingone-aic-operator
USER 65532:65532
ENTRYPOINT ["/pingone-aic-operator"]
CMD ["run"]
