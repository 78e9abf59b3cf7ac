#!/usr/bin/env bash
# Builds the container image's filesystem into a directory, without a Docker
# engine. The Dockerfile runs this same script in its build stage, so what
# CI tests here is what the image ships.
#
#   scripts/build-image-rootfs.sh OUTDIR
#
# OUTDIR receives: /usr/bin/gpu-policy-controller, /usr/bin/gpu-policy-validator,
# /usr/share/gpu-policy-controller/templates/, the shared-library closure of
# both binaries (so it runs on a bare base image or in a chroot), CA
# certificates, and /etc/passwd + /etc/group with the nonroot user 65532.
set -euo pipefail

out=${1:?usage: build-image-rootfs.sh OUTDIR}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

mkdir -p "$out"
out=$(cd "$out" && pwd)
# The directory becomes the image's "/": the nonroot user must be able to
# walk it whatever umask or mktemp mode created it.
chmod 0755 "$out"

# install builds just the two binaries (not the test tools and benchmarks).
make -s install DESTDIR="$out" PREFIX=/usr

# Copy the shared-library closure of both binaries, keeping their paths, plus
# the dynamic loader. ldd is fine here: these are our own trusted binaries.
copy_lib() {
  local src=$1
  [ -e "$src" ] || return 0
  local dst="$out$src"
  if [ ! -e "$dst" ]; then
    mkdir -p "$(dirname "$dst")"
    cp -L "$src" "$dst"
  fi
}
for bin in "$out/usr/bin/gpu-policy-controller" "$out/usr/bin/gpu-policy-validator"; do
  while read -r lib; do
    copy_lib "$lib"
  done < <(ldd "$bin" | awk '/=> \//{print $3} /^\s*\/.*ld-linux/{print $1}')
done
# glibc loads these at run time (getaddrinfo, getpwuid), ldd does not list them.
for lib in /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2 \
           /lib/x86_64-linux-gnu/libresolv.so.2; do
  copy_lib "$lib"
done
# libwebsockets dlopens its libuv event-loop plugin from its install libdir
# (the health/metrics server runs lws on libuv, see controller/http_server.h).
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
for plugin in /usr/lib/"$multiarch"/libwebsockets-evlib_uv.so; do
  copy_lib "$plugin"
  while read -r lib; do
    copy_lib "$lib"
  done < <(ldd "$plugin" | awk '/=> \//{print $3}')
done
# Debian's multiarch loader path is also reached through /lib64.
if [ -e /lib64/ld-linux-x86-64.so.2 ]; then copy_lib /lib64/ld-linux-x86-64.so.2; fi

mkdir -p "$out/etc/ssl/certs" "$out/tmp"
chmod 1777 "$out/tmp"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/"
fi
cat > "$out/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PW
cat > "$out/etc/group" <<'GR'
root:x:0:
nonroot:x:65532:
GR
cat > "$out/etc/nsswitch.conf" <<'NS'
passwd: files
group: files
hosts: files dns
NS
mkdir -p "$out/home/nonroot"
echo "rootfs ready in $out"
