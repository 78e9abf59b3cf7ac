#!/usr/bin/env bash
# Builds the container image's filesystem into a directory, without a Docker
# engine. The Dockerfile runs this same script in its build stage, so what
# CI tests here is what the image ships.
#
#   scripts/build-image-rootfs.sh OUTDIR
#
# OUTDIR receives: /usr/bin/gpu-policy-controller, /usr/bin/gpu-policy-validator,
# /usr/share/gpu-policy-controller/templates/, the shared-library closure of
# both binaries (so it runs on a bare base image or in a chroot), every glibc
# runtime library, an ld.so.conf(.d) and ld.so.cache, CA certificates, and
# /etc/passwd + /etc/group with the nonroot user 65532.
#
# The driver libraries the validator loads are not in the image: the NVIDIA
# container toolkit mounts them in at start, at the host's paths
# (/usr/lib/x86_64-linux-gnu on Debian/Ubuntu, /usr/lib64 on the RHEL
# family), and its update-ldcache hook runs the host's ldconfig against the
# container's /etc/ld.so.conf. Toolkit v1.16/v1.17 rebuild the cache only
# when /etc/ld.so.cache already exists and write their folders into
# /etc/ld.so.conf.d only when that directory exists
# (cmd/nvidia-cdi-hook/update-ldcache/update-ldcache.go), hence both here.
# The driver libraries need glibc pieces our binaries do not (libcuda: librt,
# libpthread, libdl), hence all of glibc's runtime libraries.
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
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# Every glibc runtime library (libc6's versioned shared objects: libnss_*
# for getaddrinfo/getpwuid, librt, libpthread, libdl, libm, libresolv, ...):
# what our binaries load at run time without ldd listing it, and what a
# driver library dlopened by the validator may need.
glibc_libs() {
  if command -v dpkg-query >/dev/null && dpkg-query -L libc6 >/dev/null 2>&1; then
    dpkg-query -L libc6 | grep -E '^/(usr/)?lib(64)?/([^/]+/)?[^/]+\.so\.[0-9]+$' || true
  else
    ls /lib/"$multiarch"/{libc,libm,libdl,libpthread,librt,libresolv,libanl,libutil,libmvec,libnsl}.so.* \
       /lib/"$multiarch"/libnss_*.so.* 2>/dev/null || true
  fi
}
n_glibc=0
while read -r lib; do
  copy_lib "$lib"
  n_glibc=$((n_glibc + 1))
done < <(glibc_libs)
if [ "$n_glibc" -lt 5 ]; then
  echo "build-image-rootfs.sh: found only $n_glibc glibc libraries" >&2
  exit 1
fi
# libwebsockets dlopens its libuv event-loop plugin from its install libdir
# (the health/metrics server runs lws on libuv, see controller/http_server.h).
for plugin in /usr/lib/"$multiarch"/libwebsockets-evlib_uv.so; do
  copy_lib "$plugin"
  while read -r lib; do
    copy_lib "$lib"
  done < <(ldd "$plugin" | awk '/=> \//{print $3}')
done
# Debian's multiarch loader path is also reached through /lib64.
if [ -e /lib64/ld-linux-x86-64.so.2 ]; then copy_lib /lib64/ld-linux-x86-64.so.2; fi

# The dynamic loader's configuration and cache, for the toolkit's hook to
# update (see the top of this file). Both library layouts are listed, so the
# hook's ldconfig finds a driver mounted at either even without --folder.
mkdir -p "$out/etc/ld.so.conf.d"
echo 'include /etc/ld.so.conf.d/*.conf' > "$out/etc/ld.so.conf"
printf '/usr/local/lib/%s\n/lib/%s\n/usr/lib/%s\n' "$multiarch" "$multiarch" "$multiarch" \
  > "$out/etc/ld.so.conf.d/$multiarch.conf"
printf '/usr/lib64\n/lib64\n' > "$out/etc/ld.so.conf.d/lib64.conf"
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
"$ldconfig" -r "$out"
test -s "$out/etc/ld.so.cache"
chmod 0644 "$out/etc/ld.so.conf" "$out"/etc/ld.so.conf.d/*.conf "$out/etc/ld.so.cache"

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
