#!/bin/sh
# base-finalize.sh - run by build.sh INSIDE the fresh debootstrap chroot, as
# root, before the tree is imported as cm-base:bookworm.
#
#   base-finalize.sh <debian-mirror> <security-mirror> <security-updates 0|1>
#
# It configures apt like a slim Debian image, optionally applies
# bookworm-updates/bookworm-security (debootstrap only knows the release
# suite), and strips caches, docs and host-specific files. Its content is part
# of the cm-base recipe hash.
set -eu

MIRROR="$1"
SECURITY_MIRROR="$2"
SECURITY_UPDATES="$3"

export DEBIAN_FRONTEND=noninteractive LC_ALL=C
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Never start services while packages are upgraded inside the chroot.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d

# Like debian:*-slim: later apt installs (also inside containers) skip docs.
cat >/etc/dpkg/dpkg.cfg.d/01-cm-nodoc <<'EOF'
# Drop documentation to keep images small (same idea as debian:*-slim).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
cat >/etc/apt/apt.conf.d/01-cm-minimal <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF

cat >/etc/apt/sources.list <<EOF
deb ${MIRROR} bookworm main
deb ${MIRROR} bookworm-updates main
deb ${SECURITY_MIRROR} bookworm-security main
EOF

if [ "$SECURITY_UPDATES" = 1 ]; then
    echo "cm-base: applying bookworm-updates and bookworm-security"
    apt-get -q update
    apt-get -q -y -o Dpkg::Options::=--force-confold dist-upgrade
fi
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Host keys made by the openssh-server postinst must not ship in an image.
rm -f /etc/ssh/ssh_host_*

# Docs/man/locales (copyright files stay).
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/lintian/*
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

# Host-specific or run-time files: Docker provides resolv.conf, hostname and
# hosts at run time; logs and backups from the bootstrap are noise.
rm -f /etc/resolv.conf /etc/hostname /usr/sbin/policy-rc.d
: >/etc/machine-id 2>/dev/null || true
find /var/log -type f -delete
rm -rf /tmp/* /var/tmp/* /var/cache/debconf/*-old /var/lib/dpkg/*-old /root/.bash_history
