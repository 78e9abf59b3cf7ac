# Multi-stage image for gpu-policy-controller and gpu-policy-validator.
# The build stage runs scripts/build-image-rootfs.sh, the same script CI uses
# (no Docker engine there) to build and test the image's filesystem.

# The build stage decides which libcurl, OpenSSL and libwebsockets the image
# ships, so release builds pin it by digest:
#   docker build --build-arg BASE_DIGEST=sha256:<digest> ...
# with the digest of the current debian:bookworm manifest list, resolved by
# the release process (docs/operations.md, "Pinning images"). No digest is
# written here: this repository is built and tested where no registry can be
# reached, so none could be resolved or verified, and an invented one would
# only look pinned. Without BASE_DIGEST the build uses the tag (development).
ARG BASE_IMAGE=docker.io/library/debian:bookworm
ARG BASE_DIGEST=
FROM ${BASE_IMAGE}${BASE_DIGEST:+@${BASE_DIGEST}} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config python3 ca-certificates git \
      libcurl4-openssl-dev libjansson-dev libyaml-dev libssl-dev libwebsockets-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# .git is not copied (.dockerignore), so pass the version in:
#   docker build --build-arg VERSION=v0.1.0 -t REGISTRY/gpu-policy-controller:v0.1.0 .
ARG VERSION=0.1.0
RUN VERSION="$VERSION" scripts/build-image-rootfs.sh /rootfs

# A minimal runtime: the binaries, their shared-library closure and all of
# glibc's runtime libraries, an /etc/ld.so.conf(.d) and /etc/ld.so.cache for
# the NVIDIA container toolkit's update-ldcache hook to extend with the driver
# libraries (the validator's needs; see docs/validator.md), CA certificates
# and a nonroot user; no shell, no package manager.
FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/bin/gpu-policy-controller"]
