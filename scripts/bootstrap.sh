#!/usr/bin/env bash
# Installs everything breaker needs on a fresh Debian 12 machine, idempotently.
# Debian packages only when missing (so a developer box is not touched twice);
# Python packages into .venv at the repository root, pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(redis-server redis-sentinel kamailio kamailio-redis-modules kamailio-presence-modules
      kamailio-sqlite-modules kamailio-utils-modules sip-tester wrk
      sqlite3 openssl procps curl
      prometheus prometheus-alertmanager chromium chromium-driver
      faketime dnsmasq-base haproxy)
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start system services; breaker runs its own on loopback.
  for svc in kamailio redis-server redis-sentinel prometheus prometheus-alertmanager \
             prometheus-node-exporter haproxy; do
    $sudo service "$svc" stop >/dev/null 2>&1 || true
  done
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.bootstrap-stamp
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$stamp"
fi
