#!/usr/bin/env bash
# Installs the npm packages of the tests that need a JavaScript peer (today: the CEL evaluator
# that checks manifests/provisioner/25-admission-policy.yaml), from the npm registry, exactly as
# each package-lock.json pins them. Quick when node_modules already matches the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null; then
  # Debian's Node.js and npm (a machine that has another Node.js with its own npm keeps that).
  bash scripts/install-deps.sh nodejs npm
fi

for dir in tests/provisioner/admission; do
  # A stamp of the lock it was installed from: the same lock means nothing to do.
  stamp=$dir/node_modules/.installed-from-lock
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$lock_sum" ]]; then
    continue
  fi
  echo "install-node-deps: npm ci in $dir" >&2
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  echo "$lock_sum" >"$stamp"
done
