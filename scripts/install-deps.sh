#!/bin/bash
# Install cairn's build and test dependencies from Debian 12's packages (run as root).
# Usage: scripts/install-deps.sh [build|test|bench]   (each includes the ones before it)
#        scripts/install-deps.sh deb                   (build + the .deb tools only)
set -euo pipefail
level=${1:-test}
pkgs=(gcc meson ninja-build pkg-config libfuse3-dev fuse3 libzstd-dev liblmdb-dev libssl-dev
      libcurl4-openssl-dev libarchive-dev libexpat1-dev)
if [ "$level" != build ]; then
	pkgs+=(debhelper dpkg-dev man-db bash-completion systemd) # packaging/build-deb.sh
fi
if [ "$level" != build ] && [ "$level" != deb ]; then
	pkgs+=(clang libclang-rt-14-dev clang-format valgrind attr acl lmdb-utils python3 rsync
	       radosgw ceph-mon ceph-osd awscli s3cmd curl systemd
	       python3-yaml prometheus # promtool: tests/integration/metrics.sh
	       strace # tests/integration/durable.sh
	       faketime # a skewed clock: tests/integration/s3-remote.sh
	       chromium # renders cairn report's page: tests/integration/report.sh
	       samba samba-vfs-modules smbclient) # fuse-samba.sh: Windows "Previous Versions"
fi
if [ "$level" = bench ]; then
	pkgs+=(restic borgbackup python3-llfuse rclone time)
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
