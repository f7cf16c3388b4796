#!/usr/bin/env bash
# test/two_commands.sh
# The README's two commands on one machine, in order, then proof that the second left the first one's instance
# working: `bash packaging/quickstart.sh`, `make check`, then the quickstart's cluster is restarted (it preloads
# tenancy, so a missing tenancy.so stops it), the extension is created in a new database, the `app` database still
# has it, and tenancyd answers /healthz, /readyz and an admin call through the URL the quickstart printed.
# Not part of make check (it runs make check); run it as root on a Debian 12 machine, from a clone:
#   bash test/two_commands.sh
# Idempotent: the quickstart reuses what it made before, the new database is dropped again, and the quickstart's
# instance is left running. The environment is passed to both commands (TENANCY_SKIP_DEPS=1 skips apt-get in
# make check; TENANCY_ONLY / TENANCY_TESTS narrow it, but then it is no longer the README's second command).
# Exits non-zero if make check failed or if anything of the quickstart's instance does not work afterwards; the
# checks after make check always run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if [ "$(id -u)" != 0 ]; then
  echo "run as root, like the README's two commands" >&2
  exit 1
fi
STATE=${TENANCY_STATE_DIR:-/var/lib/tenancy-dev}
PGPORT=${TENANCY_PGPORT:-5433}
PG_BIN=/usr/lib/postgresql/15/bin
OUT=$(mktemp -d /tmp/tenancy-two-commands.XXXXXX)
echo "logs in $OUT"
FAILURES=0
check() { # check DESCRIPTION COMMAND...: runs COMMAND, prints ok/FAIL
  local what=$1; shift
  if "$@" >"$OUT/last.out" 2>&1; then
    echo "ok   $what"
  else
    echo "FAIL $what:"; sed 's/^/     /' "$OUT/last.out" | tail -20
    FAILURES=$((FAILURES + 1))
  fi
}

echo "== 1/3 bash packaging/quickstart.sh"
start=$(date +%s)
if ! bash packaging/quickstart.sh 2>&1 | tee "$OUT/quickstart.out"; then
  echo "the quickstart failed: nothing to test"
  exit 1
fi
echo "(quickstart: $(( $(date +%s) - start )) s)"
# The first URL it prints is the one users are given ("tenancyd:" or, with nginx in front, "API URL:").
API_URL=$(grep -oE 'http://[^ ]+/api/v1' "$OUT/quickstart.out" | head -1)
ADMIN_TOKEN=$(sed -n 's/^ *admin token: *//p' "$OUT/quickstart.out" | head -1)
[ -n "$API_URL" ] && [ -n "$ADMIN_TOKEN" ] || { echo "the quickstart printed no URL or admin token"; exit 1; }
BASE=${API_URL%/api/v1}
echo "the quickstart's URL: $API_URL"

echo "== 2/3 make check"
start=$(date +%s)
make check 2>&1 | tee "$OUT/check.out"
check_status=${PIPESTATUS[0]}
echo "(make check: exit $check_status, $(( $(date +%s) - start )) s)"

echo "== 3/3 the quickstart's instance after make check"
as_pg() { runuser -u postgres -- "$@"; }
psql_qs() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$PGPORT" "$@"; }
check "the system server still has tenancy.so and tenancy.control" \
  test -f "$(pg_config --pkglibdir)/tenancy.so" -a -f "$(pg_config --sharedir)/extension/tenancy.control"
check "the quickstart's cluster restarts (it preloads tenancy)" \
  as_pg "$PG_BIN/pg_ctl" -D "$STATE/pgdata" -l "$STATE/postgresql.log" -m fast -w -t 60 restart
DB=two_commands_$$
check "CREATE EXTENSION tenancy in a new database ($DB)" \
  psql_qs -d postgres -c "CREATE DATABASE $DB" -c "\\c $DB" -c "CREATE EXTENSION tenancy" \
  -c "SELECT tenancy.create_tenant('Two Commands', 'two-commands')"
psql_qs -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
app_has_tenancy() { psql_qs -d app -tAc "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'" | grep .; }
check "database app still has the extension" app_has_tenancy
check "GET $BASE/healthz answers 200" curl -fsS --max-time 10 "$BASE/healthz"
# tenancyd reconnects to the restarted server: /readyz may answer 503 for a moment.
readyz() { for _ in $(seq 1 50); do curl -fsS --max-time 5 "$BASE/readyz" && return 0; sleep 0.2; done; return 1; }
check "GET $BASE/readyz answers 200 (tenancyd reaches the restarted cluster)" readyz
check "GET $API_URL/admin/tenants with the quickstart's admin token answers 200" \
  curl -fsS --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$API_URL/admin/tenants?limit=1"

echo "make check: $(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$OUT/check.out" | tail -1) (exit $check_status)"
echo "the quickstart's instance afterwards: $FAILURES check(s) failed"
[ "$check_status" = 0 ] && [ "$FAILURES" = 0 ]
