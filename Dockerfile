# Multi-stage image for gpu-policy-controller and gpu-policy-validator.
# The build stage runs scripts/build-image-rootfs.sh, the same script CI uses
# (no Docker engine there) to build and test the image's filesystem.

# The build stage decides which libcurl, OpenSSL and libwebsockets the image
# ships, so it is pinned twice over:
# - the base by digest: the debian:bookworm manifest list of 2026-08-03, as
#   the official images record it (docker-library/repo-info,
#   repos/debian/remote/bookworm.md: "docker pull debian@sha256:8130...");
# - the packages by date: apt reads snapshot.debian.org at the moment that
#   image was built from (its debuerreotype epoch, @1785715200), so a rebuild
#   gets the same versions, security fixes included up to then.
# Both move together; docs/operations.md ("Pinning images") says how.
# DEBIAN_SNAPSHOT= (empty) uses the live mirrors (development builds).
ARG BASE_IMAGE=docker.io/library/debian:bookworm
ARG BASE_DIGEST=sha256:813017f3d62be4b5891a7acca6a01bdcd4b8513daa81b1ab99d3a50385b26931
FROM ${BASE_IMAGE}@${BASE_DIGEST} AS build
ARG DEBIAN_SNAPSHOT=20260803T000000Z
# Snapshot Release files are past their Valid-Until by design; their
# signatures are still checked against the image's debian-archive-keyring.
RUN if [ -n "$DEBIAN_SNAPSHOT" ]; then \
      printf 'Types: deb\nURIs: http://snapshot.debian.org/archive/%s/%s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
        debian "$DEBIAN_SNAPSHOT" 'bookworm bookworm-updates' \
        debian-security "$DEBIAN_SNAPSHOT" bookworm-security \
        > /etc/apt/sources.list.d/debian.sources \
      && echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/10snapshot; \
    fi \
 && apt-get update \
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
