#!/usr/bin/env bash
# Build local stand-ins for the images the lab pulls, for machines with no registry:
#   lab-offline/python:3.11-bookworm   minimal Debian bookworm + python3 + a venv on PATH,
#                                      with this machine's CA bundle (pip trusts what the host trusts)
#   lab-offline/prometheus:2.42        Debian's prometheus package, laid out like prom/prometheus
# Progress goes to stderr; the last line of stdout is the settings to use:
#   eval "export $(scripts/offline-images.sh | tail -1)"
# Options: --rebuild (ignore existing images). Cache: $LAB_CACHE (default /var/cache/lab-offline).
set -euo pipefail

PYTHON_TAG=lab-offline/python:3.11-bookworm
PROMETHEUS_TAG=lab-offline/prometheus:2.42
CACHE=${LAB_CACHE:-/var/cache/lab-offline}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
REBUILD=0
[[ "${1:-}" == "--rebuild" ]] && REBUILD=1

say() { echo "offline-images: $*" >&2; }
have_image() { [[ $REBUILD == 0 ]] && docker image inspect "$1" >/dev/null 2>&1; }
need() {  # need COMMAND PACKAGE: install a Debian package when its command is missing
  command -v "$1" >/dev/null 2>&1 && return
  say "installing $2"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$2" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$2" >/dev/null; }
}

docker info >/dev/null 2>&1 || { say "no Docker engine answers: start one first (scripts/docker-engine.sh start)"; exit 1; }

# One minimal bookworm root, made once and kept in the cache.
rootfs() {
  local root=$CACHE/bookworm
  if [[ ! -x $root/usr/bin/python3 || $REBUILD == 1 ]]; then
    need debootstrap debootstrap
    say "debootstrap bookworm into $root (about a minute)"
    rm -rf "$root" && mkdir -p "$CACHE"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR" >&2
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  fi
  echo "$root"
}

import() {  # import DIR TAG CHANGES...: a directory tree as an image
  local dir=$1 tag=$2; shift 2
  local changes=()
  for change in "$@"; do changes+=(--change "$change"); done
  tar -C "$dir" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  say "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))"
}

if have_image "$PYTHON_TAG"; then
  say "$PYTHON_TAG exists (--rebuild to make it again)"
else
  root=$(rootfs)
  work=$CACHE/python && rm -rf "$work" && cp -a "$root" "$work"
  cp "$CA_BUNDLE" "$work/etc/ssl/certs/ca-certificates.crt"
  chroot "$work" python3 -m venv /opt/venv
  import "$work" "$PYTHON_TAG" \
    'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV LANG=C.UTF-8' \
    "ENV PIP_CERT=$CA_BUNDLE" "ENV SSL_CERT_FILE=$CA_BUNDLE" "ENV REQUESTS_CA_BUNDLE=$CA_BUNDLE" \
    'CMD ["python3"]'
  rm -rf "$work"
fi

if have_image "$PROMETHEUS_TAG"; then
  say "$PROMETHEUS_TAG exists (--rebuild to make it again)"
else
  root=$(rootfs)
  work=$CACHE/prometheus && rm -rf "$work" && cp -a "$root" "$work"
  say "unpacking Debian's prometheus package"
  (cd "$CACHE" && rm -f prometheus_*.deb && apt-get download prometheus >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get download prometheus >/dev/null; })
  # Unpacked aside: the package's /lib/systemd would replace the root's /lib symlink.
  rm -rf "$CACHE/prometheus-deb" && dpkg-deb -x "$CACHE"/prometheus_*.deb "$CACHE/prometheus-deb"
  cp -a "$CACHE"/prometheus-deb/usr/bin/prometheus "$CACHE"/prometheus-deb/usr/bin/promtool "$work/usr/bin/"
  rm -rf "$CACHE/prometheus-deb"
  mkdir -p "$work/etc/prometheus" "$work/prometheus"
  chown 65534:65534 "$work/prometheus"
  import "$work" "$PROMETHEUS_TAG" \
    'ENTRYPOINT ["/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    'WORKDIR /prometheus' 'USER 65534' 'EXPOSE 9090'
  rm -rf "$work"
fi

say "Grafana has no stand-in (no Debian or PyPI package): run every service but grafana"
echo "PYTHON_IMAGE=$PYTHON_TAG PROMETHEUS_IMAGE=$PROMETHEUS_TAG"
