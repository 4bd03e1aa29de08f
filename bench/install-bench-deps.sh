#!/usr/bin/env bash
# Debian packages only `make bench` needs (the peers and the floor of issue 7), kept out of
# scripts/install-deps.sh so that `make test` stays lean. Idempotent: apt runs only for packages
# dpkg does not report as installed. The bench starts every one of them privately on 127.0.0.1;
# none may run as a system service, so installation is guarded by policy-rc.d and any unit the
# packages enabled is stopped and disabled afterwards.
set -euo pipefail

packages=(
  prometheus-postgres-exporter # peer: postgres_exporter 0.11 with a custom-queries file
  prometheus-mqtt-exporter     # peer: mqtt2prometheus
  nginx                        # floor: the same bytes served as a static file
)
services=(prometheus-postgres-exporter prometheus-mqtt-exporter nginx)

bash "$(dirname "$0")/../scripts/install-deps.sh" "${packages[@]}"

# Belt and braces: whatever the policy let through (or an earlier install without it) must not
# keep a system instance running, which would skew the CPU figures and hold the default ports.
for s in "${services[@]}"; do
  if command -v systemctl >/dev/null; then
    # `disable` works offline too (it removes the wants/ links); `--now` only with systemd running.
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now "$s" >/dev/null 2>&1 || true
    else
      systemctl disable "$s" >/dev/null 2>&1 || true
    fi
  fi
  if [[ ! -d /run/systemd/system && -x /etc/init.d/$s ]]; then
    /etc/init.d/"$s" stop >/dev/null 2>&1 || true
    update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
