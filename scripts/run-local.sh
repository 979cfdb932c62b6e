#!/usr/bin/env bash
# `make run`: a local Redis (if none answers), a demo presence server, then the sidecar.
# Everything it starts lives under ./run/ and stops when the sidecar stops (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-breaker.example.toml}
rundir=$PWD/run
mkdir -p "$rundir"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "run: starting redis-server on 127.0.0.1:6379 (data in run/)"
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir "$rundir" \
    --logfile "$rundir/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [ -f kamailio-config/presence-server.cfg ]; then
  echo "run: starting the demo presence server (Kamailio) on udp:127.0.0.1:5070; logs in run/"
  mkdir -p "$rundir/presence"
  kamailio-config/make-presence-db.sh "$rundir/presence/presence.sqlite" >/dev/null
  kamailio -DD -E -f kamailio-config/presence-server.cfg -Y "$rundir/presence" -w "$rundir/presence" \
    -A 'LISTEN=udp:127.0.0.1:5070' -A 'CHILDREN=2' >"$rundir/presence.log" 2>&1 &
  pids+=($!)
fi

if [ -z "${BREAKER_API_TOKEN:-}" ]; then
  tokenfile=$rundir/api-token
  [ -s "$tokenfile" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$tokenfile")
  export BREAKER_API_TOKEN
  BREAKER_API_TOKEN=$(cat "$tokenfile")
  echo "run: operate token for force/release is in run/api-token"
fi

echo "run: sidecar on http://127.0.0.1:8080 (API docs at /docs); Ctrl-C stops everything"
.venv/bin/breaker serve --config "$config"
