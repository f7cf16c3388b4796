#!/usr/bin/env bash
# test/integration/observability_files.sh
# The Grafana dashboard parses and its queries, like the Prometheus alert rules, name only metrics and labels that
# tenancyd exports (test/lib/promql_lint.py); `promtool check rules` validates both too when promtool is installed.
set -euo pipefail
ROOT=${TENANCY_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
DASHBOARD=$ROOT/packaging/grafana/tenancy-dashboard.json
ALERTS=$ROOT/packaging/prometheus/tenancy-alerts.yml
OUT=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-observability.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

# Debian's python3 with python3-yaml (packaging/install-deps.sh --test), whatever python3 comes first on PATH.
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

# With the daemon's sources present, the exported names are also looked up in them.
daemon_args=()
[ -f "$ROOT/daemon/main.cpp" ] && daemon_args=("$ROOT/daemon")

echo "== lint $DASHBOARD $ALERTS"
PROMQL_EMIT_RULES="$OUT/dashboard-rules.yml" "$PYTHON" "$ROOT/test/lib/promql_lint.py" "$DASHBOARD" "$ALERTS" \
  "${daemon_args[@]}"

if command -v promtool >/dev/null; then
  echo "== promtool check rules"
  promtool check rules "$ALERTS" "$OUT/dashboard-rules.yml"
else
  echo "promtool not installed: PromQL checked by promql_lint.py only"
fi
echo "observability files ok"
