#!/usr/bin/env bash
# Browser tests of `onboard serve` against the real server in headless Chromium
# (Debian's `chromium`, driven by `playwright-core` from tests/browser/package.json):
# builds a small demo run, writes an ICS file with one user per role, starts the
# server on a loopback port, runs `node --test`, stops the server. Screenshots go to
# tests/browser/artifacts/ (gitignored).
#
#   bash tests/browser/run.sh [path/to/onboard]
set -euo pipefail
cd "$(dirname "$0")/../.."
ONBOARD="${1:-${CARGO_TARGET_DIR:-target}/debug/onboard}"
WORK="$(mktemp -d)"
PORT="${ONBOARD_BROWSER_PORT:-18480}"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$ONBOARD" demo --out "$WORK/demo" --patients 2000 >"$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log"; exit 1; }
export ONBOARD_PASSWORD="browser-test-password-$RANDOM$RANDOM"
HASH="$(printf '%s\n' "$ONBOARD_PASSWORD" | "$ONBOARD" serve --hash-password)"
export ONBOARD_CLINICIAN_PRACTICE="${ONBOARD_CLINICIAN_PRACTICE:-F81001}"
{
  cat "$WORK/demo/ics.yaml"
  cat <<YAML
serve:
  audit_log: audit.ndjson
  access_log: access.log
  users:
    - { id: clin, name: Dr Clinician, role: clinician, practices: [$ONBOARD_CLINICIAN_PRACTICE], password_hash: "$HASH" }
    - { id: comm, name: A Commissioner, role: commissioner, password_hash: "$HASH" }
    - { id: anal, name: An Analyst, role: analyst, password_hash: "$HASH" }
    - { id: admin, name: The Admin, role: admin, password_hash: "$HASH" }
YAML
} >"$WORK/demo/serve.yaml"

"$ONBOARD" serve --ics "$WORK/demo/serve.yaml" --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER_PID=$!
export ONBOARD_URL="http://localhost:$PORT"
for _ in $(seq 1 120); do
  if curl -fsS "$ONBOARD_URL/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/serve.log"; exit 1; fi
  sleep 0.5
done
export ONBOARD_AUDIT_LOG="$WORK/demo/audit.ndjson" ONBOARD_ACCESS_LOG="$WORK/demo/access.log"
node --test tests/browser/dashboard.test.mjs
