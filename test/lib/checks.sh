# test/lib/checks.sh
# Counted checks of the integration scripts: each prints "ok: ..." or "FAIL: ..."; the script ends non-zero when
# FAILURES > 0. Sourced, not executed.

FAILURES=0
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok: $*"; }
# expect_eq LABEL EXPECTED ACTUAL
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1 ($3)"; else fail "$1: expected [$2], got [$3]"; fi
}
