#!/usr/bin/env bash
# Builds the Debian package of OAR for data holders: the `oar` binary, the hardened systemd unit
# (packaging/oar.service), /etc/oar/oar.env for settings, and maintainer scripts that create the
# `oar` system user and its state folder. Uses only dpkg-deb (on every Debian system).
#
#   packaging/deb/build.sh                 # cargo build --release, then package it into target/deb/
#   packaging/deb/build.sh BINARY OUTDIR   # package an `oar` binary built already
#
# OAR_DEB_COMPRESSION picks dpkg-deb's compressor (xz by default; the tests use none).
#
# Install with `dpkg -i target/deb/oar_VERSION_ARCH.deb`; `tests/e2e_cli.rs` does, and checks that
# the installed service answers /readyz.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
binary="${1:-}"
out="${2:-$repo/target/deb}"
if [ -z "$binary" ]; then
  (cd "$repo" && cargo build --release -p oar-host --bin oar)
  binary="$repo/target/release/oar"
fi
[ -x "$binary" ] || { echo "no executable oar binary at $binary" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is missing: build the package on Debian or Ubuntu" >&2; exit 1; }

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0755 "$binary" "$stage/usr/bin/oar"
install -D -m 0644 "$repo/packaging/oar.service" "$stage/lib/systemd/system/oar.service"
install -D -m 0644 "$repo/README.md" "$stage/usr/share/doc/oar/README.md"
install -D -m 0644 "$repo/PRIVACY.md" "$stage/usr/share/doc/oar/PRIVACY.md"
install -D -m 0644 "$repo/policies/example.toml" "$stage/usr/share/doc/oar/examples/policy.toml"
install -d -m 0755 "$stage/etc/oar"
cat > "$stage/etc/oar/oar.env" <<'ENV'
# Settings of the OAR service (read by oar.service). Every OAR_* variable of `oar serve` works
# here; see /usr/share/doc/oar/README.md. The first start writes a starter policy, keys and a
# synthetic dataset into /var/lib/oar; replace them with the holder's own.
#OAR_LISTEN=0.0.0.0:8420
#OAR_TLS_CERT=/etc/oar/tls/cert.pem
#OAR_TLS_KEY=/etc/oar/tls/key.pem
#OAR_AUTHORITIES=holder.example:8420
#OAR_ADMIN_LISTEN=127.0.0.1:8421
#OAR_QUERY_ENGINE=polars-streaming
ENV
chmod 0640 "$stage/etc/oar/oar.env"
cat > "$stage/usr/share/doc/oar/copyright" <<'COPY'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: oar
Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY

install -d -m 0755 "$stage/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: oar
Version: $version
Architecture: $arch
Maintainer: OAR maintainers <oar@example.invalid>
Installed-Size: $size
Depends: libc6, libgcc-s1, libssl3 | libssl3t64, passwd
Section: net
Priority: optional
Homepage: https://example.invalid/oar
Description: Open Algorithms Runtime: approved analyses run where the data is
 OAR runs analysis modules (WebAssembly), signed by their authors and approved by an
 ethics committee, next to a data holder's records, and releases only aggregates with
 differential-privacy noise. This package installs the oar command and the hardened
 oar.service for the holder's service (oar serve).
CONTROL
echo "/etc/oar/oar.env" > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd oar >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/oar --no-create-home --shell /usr/sbin/nologin oar
  fi
  install -d -o oar -g oar -m 0700 /var/lib/oar
  chgrp oar /etc/oar/oar.env
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable oar.service >/dev/null
    systemctl restart oar.service
  fi
fi
POSTINST
cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl stop oar.service || true
  if [ "$1" = remove ]; then systemctl disable oar.service >/dev/null || true; fi
fi
PRERM
cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
# The holder's records (ledger, audit log, releases, keys) in /var/lib/oar stay, even on purge:
# remove them by hand once they are archived.
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
POSTRM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/oar_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Z"${OAR_DEB_COMPRESSION:-xz}" "$stage" "$deb" >/dev/null
echo "$deb"
