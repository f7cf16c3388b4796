#!/usr/bin/env bash
# test/integration/daemon_metrics_series.sh
# Scrapes a running tenancyd after traffic of tenants of every plan (a 5xx included) and checks that every PromQL
# selector of packaging/grafana and packaging/prometheus matches a series it exports, `le` values included
# (test/lib/promql_series_check.py). Issue #16: the SLA panel read a 0.2 s bucket the daemon did not export.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
setup_daemon
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

for plan in developer team enterprise; do
  api POST /api/v1/admin/tenants "{\"organization_name\": \"Series $plan\", \"slug\": \"series-$plan\", \"plan\": \"$plan\"}"
  expect 201 "$plan tenant" || finish
  id=$(jqb .id); IDS+=("$id")
  api POST "/api/v1/tenants/$id/users" '{"email": "u@series-'$plan'.example", "send_invitation": false}'; expect 201 "$plan user"
  for _ in 1 2 3; do api GET "/api/v1/tenants/$id"; api GET "/api/v1/tenants/$id/usage"; done
  api GET "/api/v1/tenants/$id/nope"
done
# A 5xx of a known tenant: its row locked past the statement timeout (5 s), so the PATCH answers 503.
T=${IDS[2]}
cluster_psql -d app -c "BEGIN" -c "SELECT 1 FROM tenancy.tenants WHERE id = '$T' FOR UPDATE" -c "SELECT pg_sleep(6.5)" -c "COMMIT" >/dev/null 2>&1 &
HOLDER=$!
sleep 0.5
api PATCH "/api/v1/tenants/$T" '{"display_name": "slow"}'
[ "${STATUS:0:1}" = 5 ] && pass "a 5xx for a known tenant ($STATUS)" || fail "expected a 5xx, got $STATUS"
wait $HOLDER
# A tenant used only through SQL (no request to tenancyd at all) near its api_calls quota gets quota gauges from the
# database's counters (tenancy.quota_ranking), so the quota alerts can fire for it.
SQLONLY=$(cluster_psql -d app -tAc "SELECT id FROM tenancy.create_tenant('SQL only', 'sql-only', 'developer')")
cluster_psql -d app -tAc "SELECT tenancy.consume('$SQLONLY', 'api_calls', (tenancy.usage('$SQLONLY') #>> '{quotas,max_api_calls_per_month}')::bigint * 95 / 100)" >/dev/null
api GET /metrics; expect 200 "scrape" || finish
grep -q "^tenancy_tenant_quota_utilization_percent{tenant_id=\"$SQLONLY\",quota_type=\"api_calls\"} 9[0-9]" <<<"$BODY" &&
  pass "a tenant used only through SQL has its quota gauge (95 % api_calls)" ||
  fail "no quota gauge for the SQL-only tenant: $(grep "$SQLONLY" <<<"$BODY" | head -3)"
printf '%s\n' "$BODY" > "$TENANCY_TMP/scrape.txt"
grep -q 'le="0.2"' "$TENANCY_TMP/scrape.txt" && pass "the 0.2 s bucket is exported" || fail "no le=\"0.2\" bucket"
if "$PYTHON" "$TENANCY_ROOT/test/lib/promql_series_check.py" "$TENANCY_ROOT/packaging/grafana/tenancy-dashboard.json" \
    "$TENANCY_ROOT/packaging/prometheus/tenancy-alerts.yml" "$TENANCY_TMP/scrape.txt"; then
  pass "every dashboard and alert selector matches an exported series"
else
  fail "selectors that match nothing the daemon exports (above)"
fi
finish
