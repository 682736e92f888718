#!/usr/bin/env bash
# The runtime image's whole file system, from a cargo-tempo binary built beforehand:
#   image/rootfs.sh BINARY ROOTFS
# - the binary, without its debug sections (symbol names stay, for backtraces);
# - exactly the shared libraries it links (glibc, libm, libgcc_s) and the dynamic loader, from
#   the machine that built it, as distroless's `cc` image carries them;
# - the CA certificates (registries, OTLP and NATS over TLS), a passwd and group naming the
#   non-root user 65532, an empty /tmp, and /var/lib/tempo owned by that user.
# The Containerfile runs it in its build stage; image/build.sh runs it here.
set -euo pipefail

binary=$1
rootfs=$2
uid=65532

rm -rf "$rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/var/lib/tempo" "$rootfs/tmp"
strip --strip-debug -o "$rootfs/usr/local/bin/cargo-tempo" "$binary"

# Each library ldd names (`name => /path (addr)`, and the loader as `/path (addr)`), copied to
# the same path, its symlinks resolved.
ldd "$binary" | awk '/=> \// { print $3 } /^\t\// { print $1 }' | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done

cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\ntempo:x:%s:%s:tempo:/var/lib/tempo:/sbin/nologin\n' \
  "$uid" "$uid" > "$rootfs/etc/passwd"
printf 'root:x:0:\ntempo:x:%s:\n' "$uid" > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chown "$uid:$uid" "$rootfs/var/lib/tempo"
