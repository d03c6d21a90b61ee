#!/usr/bin/env bash
# `make deb`: target/debian/nanocl_VERSION_ARCH.deb, built with dpkg-deb from a staged
# `scripts/install.sh` (PREFIX=/usr). Installing it puts the binaries, unit, man pages and
# completions in place, creates the group `nanocl` (members use nanocl without sudo) and,
# where systemd runs, enables and starts nanocld. Removing it stops the service; purging it
# leaves /var/lib/nanocl (the store) alone, as data is never deleted for you.
#   NANOCL_BIN_DIR  take the binaries from there instead of target/release (tests)
#   NANOCL_DEB_DIR  where the package goes (default target/debian)
#   NANOCL_DEB_COMPRESSION  dpkg-deb's -Z (default xz; the tests use none for debug binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out=${NANOCL_DEB_DIR:-target/debian}
stage=$out/stage
rm -rf "$stage"
DESTDIR="$stage" PREFIX=/usr SYSCONFDIR=/etc bash scripts/install.sh >/dev/null
install -d "$stage/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: nanocl
Version: $version
Architecture: $arch
Maintainer: nanocl developers <dev@nanocl.io>
Installed-Size: $installed_size
Depends: adduser, libc6
Recommends: docker.io | docker-ce, git
Suggests: etcd-server
Section: admin
Priority: optional
Homepage: https://github.com/nanocl/nanocl
Description: declarative orchestration for Docker hosts
 nanocl keeps Docker matching versioned YAML resources: namespaces, clusters,
 networks and cargoes (replicated, self-healing, autoscaled containers), on one
 host with an embedded store or across hosts on etcd. This package holds the
 nanocl CLI and the nanocld daemon, run as the systemd service nanocld.
CONTROL
echo /etc/default/nanocld > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  # The group of the API socket (--socket-group nanocl in /etc/default/nanocld).
  if [ -z "$DPKG_ROOT" ] && ! getent group nanocl >/dev/null; then
    addgroup --system nanocl
  fi
  if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable nanocld.service >/dev/null
    systemctl restart nanocld.service
  fi
fi
exit 0
POSTINST
cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl disable --now nanocld.service >/dev/null || true
fi
exit 0
PRERM
cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
POSTRM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
deb="$out/nanocl_${version}_${arch}.deb"
dpkg-deb --root-owner-group "-Z${NANOCL_DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
dpkg-deb --info "$deb" >/dev/null
echo "deb: $deb"
