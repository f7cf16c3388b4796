#!/usr/bin/env bash
# test/run-tests.sh
# make check: installs test dependencies, builds, installs into a throw-away copy of the server, then runs the unit
# tests (ctest), pg_regress, pg_isolation_regress and the integration scripts; ends with "N passed, M failed".
# It leaves the machine as it found it (README: the quickstart's installation survives it); the last integration
# check, system_unchanged, compares tenancy's system files, packages and the quickstart's processes before and after.
#   TENANCY_SKIP_DEPS=1     do not run apt-get (a developer machine that already has everything)
#   TENANCY_ONLY=unit,regress,isolation,integration   run only these suites
#   TENANCY_TESTS="quota crypto"   only these regress/isolation/integration tests (names without extension)
#   TENANCY_KEEP=1          keep the scratch dir (logs, regression.diffs) after the run
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${TENANCY_SKIP_DEPS:-0}" != 1 ]; then
  bash packaging/install-deps.sh --test || { echo "0 passed, 1 failed"; exit 1; }
fi

PG_CONFIG=${PG_CONFIG:-pg_config}
source test/lib/system_state.sh
SYSTEM_BEFORE=$(system_state)
PG_BINDIR=$($PG_CONFIG --bindir)
PG_SHAREDIR=$($PG_CONFIG --sharedir)
PG_PKGLIBDIR=$($PG_CONFIG --pkglibdir)
PGXS_DIR=$(dirname "$($PG_CONFIG --pgxs)")/../..

echo "== build"
BUILD_LOG=$PWD/build/make.log # per checkout: two worktrees testing at once must not share one log
mkdir -p build
make -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >"$BUILD_LOG" 2>&1 || { tail -50 "$BUILD_LOG"; echo "0 passed, 1 failed"; exit 1; }

# Scratch dir, readable and writable by the postgres OS user; removed on exit unless TENANCY_KEEP=1.
export TENANCY_TMP=$(mktemp -d /tmp/tenancy-check.XXXXXX)
chmod 755 "$TENANCY_TMP"
[ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP"
source test/lib/common.sh
cleanup() {
  stop_all_clusters
  pkill -f "$TENANCY_TMP" 2>/dev/null
  if [ "${TENANCY_KEEP:-0}" = 1 ]; then echo "kept $TENANCY_TMP"; else rm -rf "$TENANCY_TMP"; fi
}
trap cleanup EXIT

# A private copy of the server (PostgreSQL is relocatable: it finds share/ and lib/ relative to its binaries), so
# tests never touch the system installation and several checkouts can test at once.
INST="$TENANCY_TMP/inst"
mkdir -p "$INST$(dirname "$PG_BINDIR")" "$INST$(dirname "$PG_SHAREDIR")"
cp -a "$(dirname "$PG_BINDIR")/." "$INST$(dirname "$PG_BINDIR")/"
cp -a "$PG_SHAREDIR" "$INST$(dirname "$PG_SHAREDIR")/"
# Whatever tenancy the system server has (the quickstart's make install, a package) is not part of the copy: only
# this checkout's files, so no stale upgrade script or module can be picked up.
rm -f "$INST$PG_PKGLIBDIR"/tenancy.so "$INST$PG_SHAREDIR"/extension/tenancy.control \
  "$INST$PG_SHAREDIR"/extension/tenancy--*.sql
make install DESTDIR="$INST" PG_CONFIG="$PG_CONFIG" >"$TENANCY_TMP/install.log" 2>&1 || {
  tail -30 "$TENANCY_TMP/install.log"; echo "0 passed, 1 failed"; exit 1; }
export TENANCY_PGBIN="$INST$PG_BINDIR"
BUILD_DIR=${CMAKE_BUILD_DIR:-build} # make check-asan builds into build-asan
export TENANCY_DAEMON="$ROOT/$BUILD_DIR/tenancyd"
export TENANCY_ROOT="$ROOT"

# Master key for the encryption tests: 64 hex characters, mode 0600, owned by the server's OS user.
openssl rand -hex 32 > "$TENANCY_TMP/master.key"
openssl rand -hex 32 > "$TENANCY_TMP/master2.key"
chmod 600 "$TENANCY_TMP"/master*.key
[ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP"/master*.key
cat > "$TENANCY_TMP/tenancy-test.conf" <<CONF
shared_preload_libraries = 'tenancy'
tenancy.master_key_file = '$TENANCY_TMP/master.key'
max_prepared_transactions = 10
timezone = 'UTC'
CONF
cp -r test/regress "$TENANCY_TMP/regress-in"
[ "$(id -u)" = 0 ] && chown -R postgres: "$TENANCY_TMP"

want_suite() { [ -z "${TENANCY_ONLY:-}" ] || [[ ",$TENANCY_ONLY," == *",$1,"* ]]; }
want_test() { [ -z "${TENANCY_TESTS:-}" ] || [[ " $TENANCY_TESTS " == *" $1 "* ]]; }

PASSED=0
FAILED=0
FAILED_NAMES=()
SKIPPED_NAMES=()
SKIP_STATUS=77 # an integration script that cannot run here exits 77 (automake's convention): not a pass
record() { # record NAME STATUS
  case "$2" in
    0) PASSED=$((PASSED + 1)) ;;
    "$SKIP_STATUS") SKIPPED_NAMES+=("$1") ;;
    *) FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1") ;;
  esac
}

# Unit tests: ctest's own counts.
if want_suite unit; then
  echo "== unit tests (GoogleTest)"
  out=$(cd "$BUILD_DIR" && ctest --output-on-failure -j"$(nproc)" 2>&1); status=$?
  echo "$out" | tail -15
  n_total=$(echo "$out" | sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p')
  n_fail=$(echo "$out" | sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p')
  if [ -n "$n_total" ]; then
    PASSED=$((PASSED + n_total - n_fail)); FAILED=$((FAILED + n_fail))
    [ "$n_fail" = 0 ] || FAILED_NAMES+=("unit")
  else
    record unit "$status"
  fi
fi

# pg_regress and pg_isolation_regress: counts come from their "ok"/"FAILED" lines.
run_pg_regress() { # run_pg_regress KIND BINARY TESTS...
  local kind=$1 binary=$2; shift 2
  local port out status
  port=$(free_port)
  out=$(cd "$TENANCY_TMP" && as_pg "$binary" --bindir="$TENANCY_PGBIN" --inputdir="$TENANCY_TMP/regress-in" \
    --outputdir="$TENANCY_TMP/$kind-out" --temp-instance="$TENANCY_TMP/$kind-instance" \
    --temp-config="$TENANCY_TMP/tenancy-test.conf" --port="$port" --load-extension=tenancy "$@" 2>&1)
  status=$?
  echo "$out" | grep -vE '^(============|\(using postmaster)'
  local ok failed
  ok=$(echo "$out" | grep -cE '^(ok|test|     ) .*(\.\.\. ok| ok  *[0-9]+ ms)$')
  failed=$(echo "$out" | grep -cE '(\.\.\. FAILED|FAILED  *[0-9]+ ms|failed \(ignored\))')
  PASSED=$((PASSED + ok)); FAILED=$((FAILED + failed))
  if [ "$status" != 0 ]; then
    [ "$failed" = 0 ] && FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$kind")
    [ -f "$TENANCY_TMP/$kind-out/regression.diffs" ] && head -300 "$TENANCY_TMP/$kind-out/regression.diffs"
  fi
}

if want_suite regress; then
  tests=()
  for f in test/regress/sql/*.sql; do t=$(basename "$f" .sql); want_test "$t" && tests+=("$t"); done
  if [ ${#tests[@]} -gt 0 ]; then
    echo "== pg_regress"
    run_pg_regress regress "$PGXS_DIR/src/test/regress/pg_regress" "${tests[@]}"
  fi
fi

if want_suite isolation; then
  tests=()
  for f in test/regress/specs/*.spec; do [ -e "$f" ] || continue; t=$(basename "$f" .spec); want_test "$t" && tests+=("$t"); done
  if [ ${#tests[@]} -gt 0 ]; then
    echo "== pg_isolation_regress"
    run_pg_regress isolation "$PGXS_DIR/src/test/isolation/pg_isolation_regress" "${tests[@]}"
  fi
fi

# Integration scripts: each test/integration/NAME.sh exits 0 on success, 77 when skipped; its output is kept in the
# scratch dir.
if want_suite integration; then
  echo "== integration"
  for f in test/integration/*.sh; do
    [ -e "$f" ] || continue
    t=$(basename "$f" .sh)
    want_test "$t" || continue
    start=$(date +%s)
    ( export TENANCY_TMP="$TENANCY_TMP/it-$t"; mkdir -p "$TENANCY_TMP"; chmod 755 "$TENANCY_TMP"
      [ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP"
      cp "$TENANCY_TMP/../tenancy-test.conf" "$TENANCY_TMP/"
      trap stop_all_clusters EXIT
      timeout 900 bash "$f" ) >"$TENANCY_TMP/it-$t.log" 2>&1
    status=$?
    record "$t" "$status"
    if [ "$status" = 0 ]; then
      echo "ok   $t ($(( $(date +%s) - start )) s)"
    elif [ "$status" = "$SKIP_STATUS" ]; then
      echo "skip $t: $(tail -1 "$TENANCY_TMP/it-$t.log")"
    else
      echo "FAIL $t ($(( $(date +%s) - start )) s), last lines of its log:"; tail -40 "$TENANCY_TMP/it-$t.log"
    fi
  done
fi

# Last: the machine as we found it. Nothing above may write to the system's directories (tests use the private copy
# of the server; deb_install installs the packages in a mount-namespace sandbox), take the quickstart's ports or stop
# its processes; this catches any test that does.
if want_suite integration && want_test system_unchanged; then
  SYSTEM_AFTER=$(system_state)
  if [ "$SYSTEM_AFTER" = "$SYSTEM_BEFORE" ]; then
    echo "ok   system_unchanged"
    record system_unchanged 0
  else
    echo "FAIL system_unchanged: the run changed tenancy's installation on this machine (< before, > after):"
    diff <(echo "$SYSTEM_BEFORE") <(echo "$SYSTEM_AFTER")
    record system_unchanged 1
  fi
fi

[ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed: ${FAILED_NAMES[*]}"
[ ${#SKIPPED_NAMES[@]} -gt 0 ] && echo "skipped (not counted): ${SKIPPED_NAMES[*]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ] && [ "$PASSED" -gt 0 ]
