#!/usr/bin/env bash
# test/integration/docs_coverage.sh
# Keeps the reference docs complete: every public function of schema tenancy must appear in docs/sql-reference.md
# and every route path of daemon/openapi.json in docs/http-reference.md; fails naming each one missing.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_cluster docs
cluster_psql -d postgres -q -c "CREATE EXTENSION tenancy"

SQL_DOC="$TENANCY_ROOT/docs/sql-reference.md"
HTTP_DOC="$TENANCY_ROOT/docs/http-reference.md"
missing=0

functions=$(cluster_psql -d postgres -At -c "
  SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = 'tenancy' AND p.proname NOT LIKE '\_%' ORDER BY 1")
[ -n "$functions" ] || { echo "FAIL: no public functions found in schema tenancy"; exit 1; }
for fn in $functions; do
  # Whole names only: tenancy.rate_limit must not count as documented through tenancy.rate_limit_max_buckets.
  if ! grep -qE -e "tenancy\.$fn([^a-z0-9_]|\$)" -e "(^|[^a-z0-9_.])$fn\(" "$SQL_DOC"; then
    echo "FAIL: docs/sql-reference.md does not document function tenancy.$fn"
    missing=1
  fi
done

routes=$(jq -r '.paths | keys[]' "$TENANCY_ROOT/daemon/openapi.json")
[ -n "$routes" ] || { echo "FAIL: no routes found in daemon/openapi.json"; exit 1; }
while IFS= read -r route; do
  # In backticks, so /api/v1/tenants/{id} is not found inside /api/v1/tenants/{id}/users.
  if ! grep -qF -- "\`$route\`" "$HTTP_DOC"; then
    echo "FAIL: docs/http-reference.md does not document route $route"
    missing=1
  fi
done <<<"$routes"

[ "$missing" -eq 0 ] || exit 1
echo "docs cover $(wc -w <<<"$functions") functions and $(wc -l <<<"$routes") routes"
