#!/usr/bin/env bash
# A container engine and a python:3.11-slim equivalent, on a Debian bookworm machine that reaches
# Debian's and PyPI's servers but no container registry.
#
# 1. podman, runc and mmdebstrap from Debian (apt), configured for this kind of machine: runc
#    (crun refuses the kernel's hybrid cgroup v1/v2 layout), the cgroupfs manager and the file
#    events logger (no systemd), and ulimits no higher than this machine's hard limits (podman
#    asks for more than the container may have, and runc then cannot start it).
# 2. A base image made from Debian bookworm packages with mmdebstrap: python3.11 with a virtual
#    environment at /usr/local, so python and pip are where the official image has them, and
#    imported under a tag derived from this recipe. A second run finds the tag and builds
#    nothing.
#
# Prints the base image's reference on standard output (everything else goes to stderr):
#     BASE=$(.ci/container-base.sh)  &&  invoke image --build-only --engine podman --base-image "$BASE"
set -euo pipefail

say() { echo "container-base: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "run as root: it installs packages, writes /etc/containers and builds with root podman"
  exit 2
fi

missing=()
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >&2
fi

limit() {  # the hard limit, capped: podman's defaults exceed it
  local hard=$1 cap=$2
  if [ "$hard" = unlimited ] || [ "$hard" -gt "$cap" ]; then echo "$cap"; else echo "$hard"; fi
}
nofile=$(limit "$(ulimit -Hn)" 1048576)
nproc=$(limit "$(ulimit -Hu)" 32768)
mkdir -p /etc/containers/containers.conf.d
cat >/etc/containers/containers.conf.d/50-mlflow-platform-ci.conf <<EOF
# Written by .ci/container-base.sh for this kind of machine (see there).
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
if [ ! -e /etc/containers/storage.conf ]; then
  cat >/etc/containers/storage.conf <<'EOF'
# Written by .ci/container-base.sh: overlay on the host's filesystem (root podman).
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
fi

# The recipe: anything that changes the image changes the tag.
packages="python3.11,python3.11-venv,ca-certificates"
mirrors=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
changes=(
  "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
  "ENV LANG=C.UTF-8"
  'CMD ["python3"]'
)
recipe=$(printf '%s\n' "$packages" "${mirrors[@]}" "${changes[@]}" "$(sha256sum <"$0")")
tag="localhost/mlflow-platform-base:py3.11-bookworm-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"

if podman image exists "$tag"; then
  say "$tag is already built"
  echo "$tag"
  exit 0
fi

say "building $tag from Debian bookworm packages (mmdebstrap)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS
# minbase with docs, man pages and translations left out, as Debian's slim images do; apt's
# lists and caches are cleaned by mmdebstrap.
mmdebstrap --quiet --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='chroot "$1" python3.11 -m venv /usr/local' \
  --customize-hook='chroot "$1" python -c "import ensurepip, venv, ssl"' \
  bookworm "$work/base.tar" "${mirrors[@]}" >&2
import_args=()
for change in "${changes[@]}"; do import_args+=(--change "$change"); done
podman import --quiet "${import_args[@]}" "$work/base.tar" "$tag" >/dev/null
say "built $tag in $((SECONDS - started))s"
echo "$tag"
