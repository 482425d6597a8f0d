#!/usr/bin/env bash
# The one step for machines with no registry: build local stand-ins for the images the lab pulls,
#   lab-offline/python:3.11-bookworm   minimal Debian bookworm + python3 + a venv on PATH,
#                                      with this machine's CA bundle (pip trusts what the host trusts)
#   lab-offline/prometheus:2.42        Debian's prometheus package, laid out like prom/prometheus
# and write compose.override.yaml beside docker-compose.yml (not committed; docker compose reads
# it by itself): the lab's images are built on the python stand-in, Prometheus runs the other,
# and Grafana, which has none, is left in a profile that nothing starts. After it every command
# of the README works as written (docker compose up -d --wait, --profile compare, down). Delete
# the file where a registry answers, then run `docker compose build`.
# Both images start from one debootstrap root kept in $LAB_CACHE (default /var/cache/lab-offline);
# delete that folder to make the root again. LAB_OVERRIDE: write the file there instead.
# Progress goes to stderr; the last line of stdout is the same settings, for a shell or CI:
#   eval "export $(scripts/offline-images.sh | tail -1)"
# --rebuild: make both images again, even if they exist.
set -euo pipefail

PYTHON_TAG=lab-offline/python:3.11-bookworm
PROMETHEUS_TAG=lab-offline/prometheus:2.42
CACHE=${LAB_CACHE:-/var/cache/lab-offline}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
OVERRIDE=${LAB_OVERRIDE:-$ROOT/compose.override.yaml}
MARK="# Written by scripts/offline-images.sh"
REBUILD=0
case "${1:-}" in
  --rebuild) REBUILD=1 ;;
  "") ;;
  *) echo "usage: $0 [--rebuild]" >&2; exit 2 ;;
esac

say() { echo "offline-images: $*" >&2; }
have_image() { [[ $REBUILD == 0 ]] && docker image inspect "$1" >/dev/null 2>&1; }
logged() {  # logged LOG COMMAND...: run quietly, show the log's end if it fails
  "${@:2}" >"$1" 2>&1 || { say "failed: ${*:2} (end of $1:)"; tail -20 "$1" >&2; exit 1; }
}

# The Debian mirror this host's apt uses (deb.debian.org if none is found).
host_mirror() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -E '^\s*(deb|URIs:)\s' | grep -oE 'https?://[^ ]+/debian/?(\s|$)' | head -1 | tr -d '[:space:]' || true
}

docker info >/dev/null 2>&1 || { say "no Docker engine answers: start one first (scripts/docker-engine.sh start)"; exit 1; }
mkdir -p "$CACHE"
case "$(cd "$CACHE" && pwd -P)/" in
  "$ROOT"/*) say "LAB_CACHE=$CACHE is inside the repository: use another"; exit 2 ;;
esac
# Compose reads one override file: never replace or shadow one that this script did not write.
for file in "$OVERRIDE" "$ROOT"/{compose,docker-compose}.override.{yml,yaml}; do
  if [[ -e $file ]] && [[ $(head -1 "$file") != "$MARK"* ]]; then
    say "$file is not this script's: move it, or add to it what LAB_OVERRIDE=/tmp/offline.yaml $0 writes there"
    exit 2
  fi
done

# One minimal bookworm root, made once and kept in the cache.
base() {
  [[ -e $CACHE/bookworm.done ]] && return
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q debootstrap >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
  fi
  local mirror
  mirror=$(host_mirror)
  mirror=${mirror:-http://deb.debian.org/debian}
  say "debootstrap bookworm (minbase) from $mirror into $CACHE/bookworm"
  rm -rf "$CACHE/bookworm" "$CACHE/bookworm.done"
  local t0=$SECONDS
  logged "$CACHE/debootstrap.log" debootstrap --variant=minbase --include=ca-certificates bookworm "$CACHE/bookworm" "$mirror"
  cp "$CA_BUNDLE" "$CACHE/bookworm$CA_BUNDLE"   # the host's trust, for apt over https too
  rm -f "$CACHE"/bookworm/var/cache/apt/archives/*.deb
  touch "$CACHE/bookworm.done"
  say "root ready in $((SECONDS - t0)) s"
}

# A fresh copy of the root, plus Debian packages installed without starting any service.
root_with() {
  WORK=$CACHE/work T0=$SECONDS
  rm -rf "$WORK" && cp -a "$CACHE/bookworm" "$WORK"
  cp -L /etc/resolv.conf "$WORK/etc/resolv.conf"   # today's DNS, for apt in the chroot
  printf '#!/bin/sh\nexit 101\n' >"$WORK/usr/sbin/policy-rc.d" && chmod +x "$WORK/usr/sbin/policy-rc.d"
  say "installing $* into the root"
  logged "$CACHE/apt.log" chroot "$WORK" apt-get update
  logged "$CACHE/apt.log" chroot "$WORK" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@"
  rm -f "$WORK/usr/sbin/policy-rc.d"
}

# Slim the root as Debian's slim images do, import it with Dockerfile-style changes, drop it.
import_root() {  # import_root TAG CHANGE...
  local tag=$1 changes=(); shift
  for change in "$@"; do changes+=(--change "$change"); done
  cp "$CA_BUNDLE" "$WORK$CA_BUNDLE"   # again: a package's trigger may have rewritten it
  rm -rf "$WORK"/var/lib/apt/lists/* "$WORK"/var/cache/apt/*.bin "$WORK"/var/cache/apt/archives/*.deb \
    "$WORK"/usr/share/{man,info,locale}/* "$WORK"/etc/{resolv.conf,hostname}
  find "$WORK/usr/share/doc" -type f ! -name copyright -delete
  say "importing $tag"
  tar -C "$WORK" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  rm -rf "$WORK"
  say "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'), $((SECONDS - T0)) s)"
}

if have_image "$PYTHON_TAG"; then
  say "$PYTHON_TAG exists (--rebuild to make it again)"
else
  base
  root_with python3 python3-venv
  chroot "$WORK" python3 -m venv /opt/venv
  import_root "$PYTHON_TAG" \
    'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "ENV PIP_CERT=$CA_BUNDLE" "ENV SSL_CERT_FILE=$CA_BUNDLE" "ENV REQUESTS_CA_BUNDLE=$CA_BUNDLE" \
    'ENV LANG=C.UTF-8' 'CMD ["python3"]'
  docker run --rm "$PYTHON_TAG" sh -c 'python -c "import ssl, sqlite3, venv" && pip --version && command -v useradd' >/dev/null \
    || { say "$PYTHON_TAG does not run python, pip and useradd"; exit 1; }
fi

if have_image "$PROMETHEUS_TAG"; then
  say "$PROMETHEUS_TAG exists (--rebuild to make it again)"
else
  base
  root_with prometheus   # with the web UI's JavaScript libraries, from Debian too
  rm -rf "$WORK/usr/share/javascript/moment-timezone/data"   # 212 MB the UI never loads
  mkdir -p "$WORK/prometheus" && chown 65534:65534 "$WORK/prometheus"
  import_root "$PROMETHEUS_TAG" \
    'ENTRYPOINT ["/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    'WORKDIR /prometheus' 'USER 65534' 'EXPOSE 9090'
  if ! docker run --rm "$PROMETHEUS_TAG" --version >/dev/null 2>&1 \
    || ! docker run --rm --entrypoint /bin/promtool "$PROMETHEUS_TAG" --version >/dev/null 2>&1; then
    say "$PROMETHEUS_TAG does not run prometheus and promtool"; exit 1
  fi
fi

# The services that build an image (the others run one of theirs), and the two stand-ins.
cat >"$OVERRIDE.new" <<EOF
$MARK: this machine cannot pull images, so the lab builds on
# and runs local stand-ins. docker compose reads this file beside docker-compose.yml by itself.
# Delete it where a registry answers, then run \`docker compose build\`.
x-offline-build: &offline-build
  build: {args: {PYTHON_IMAGE: $PYTHON_TAG}}
services:
  upstream: *offline-build
  receiver: *offline-build
  receiver-sync: *offline-build
  sender: *offline-build
  sender-compare: *offline-build
  prometheus:
    image: $PROMETHEUS_TAG
  # No stand-in (no Debian or PyPI package has Grafana): in a profile of its own, which neither
  # \`docker compose up\` nor \`--profile compare\` starts.
  grafana:
    profiles: [grafana]
EOF
mv "$OVERRIDE.new" "$OVERRIDE"
say "wrote $OVERRIDE: docker compose now builds on $PYTHON_TAG, runs $PROMETHEUS_TAG and starts no Grafana"
say "(make snapshot draws the dashboard from Prometheus); delete the file where a registry answers"
echo "PYTHON_IMAGE=$PYTHON_TAG PROMETHEUS_IMAGE=$PROMETHEUS_TAG"
