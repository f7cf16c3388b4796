#!/usr/bin/env bash
# test/integration/deb_install.sh
# Installs the Debian packages (built by make deb, or reused when newer than the sources) with apt-get, creates the
# extension in a cluster run by the system server with the packaged module, starts tenancyd by its unit's ExecStart
# line (systemd is not running here), smoke-tests the API, then purges both packages and checks nothing is left.
# All of it happens in a sandbox (a private mount namespace with overlays over /usr, /etc, /var): the machine's own
# files and dpkg database are never written ("The sandbox" below says why and how).
#   TENANCY_SKIP_DEB=1     skip, exit 77 (the test installs system packages and may rebuild everything: a few minutes)
#   TENANCY_DEB_DIR=DIR    install the .debs found in DIR (no build, no freshness check)
#   TENANCY_DEB_SANDBOX=0  no sandbox even where one is possible: install into the machine itself, as a machine
#                          without mount namespaces does (only when nothing of the packages is there, else skip)
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

if [ "${TENANCY_SKIP_DEB:-0}" = 1 ]; then
  echo "skipped: TENANCY_SKIP_DEB=1"
  exit 77
fi
if [ "$(id -u)" != 0 ]; then
  echo "skipped: installing packages needs root"
  exit 77
fi

PACKAGES=(postgresql-15-tenancy tenancyd)
UNIT=/lib/systemd/system/tenancyd.service
CONF=/etc/tenancy/tenancyd.yaml
SYSTEM_PGBIN=/usr/lib/postgresql/15/bin
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive

fail() {
  echo "FAIL: $*" >&2
  echo "(a local make check can skip this test with TENANCY_SKIP_DEB=1)" >&2
  exit 1
}

# --- the packages: reuse build/deb when both .debs are newer than every source file, else make deb ------------
deb_dir=${TENANCY_DEB_DIR:-$TENANCY_ROOT/build/deb}
debs_fresh() {
  local deb f
  for p in "${PACKAGES[@]}"; do
    deb=$(ls "$deb_dir/${p}"_*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] || return 1
    while IFS= read -r -d '' f; do
      [ -e "$TENANCY_ROOT/$f" ] && [ "$TENANCY_ROOT/$f" -nt "$deb" ] && { echo "rebuilding: $f is newer than $deb"; return 1; }
    done < <(git -C "$TENANCY_ROOT" ls-files -z --cached --others --exclude-standard -- . ':!test' ':!bench' ':!.ci')
  done
  return 0
}
if [ -z "${TENANCY_DEB_DIR:-}" ] && ! debs_fresh; then
  echo "== make deb (a few minutes on an idle machine; TENANCY_SKIP_DEB=1 skips this test)"
  start=$(date +%s)
  # The unit tests already ran in make check (nocheck: not again in the package), and no debug-symbol packages.
  DEB_BUILD_OPTIONS="nocheck noautodbgsym ${DEB_BUILD_OPTIONS:-}" make -C "$TENANCY_ROOT" deb
  echo "make deb took $(( $(date +%s) - start )) s"
fi
debs=()
for p in "${PACKAGES[@]}"; do
  deb=$(ls "$deb_dir/${p}"_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || fail "no ${p}_*.deb in $deb_dir"
  debs+=("$deb")
done
echo "packages: ${debs[*]}"

# --- the sandbox ---------------------------------------------------------------------------------------------------
# make check must leave the machine as it found it. packaging/quickstart.sh `make install`s tenancy.so and the
# extension's scripts into the system server's directories, the very paths postgresql-15-tenancy owns: installing the
# package over them and purging it deleted the quickstart's files, and its cluster (which preloads tenancy) could not
# restart. So the install, the smoke test and the purge run in a private mount namespace (unshare --mount) in which
# /usr, /etc, /var and the other directories dpkg or a maintainer script could write are overlays of the real ones,
# their upper layers on a tmpfs that exists only inside that namespace. dpkg, apt, adduser, the postinst's
# statoverride and man-db's trigger write into the overlays; the real files are never opened for writing; other
# processes (the quickstart's cluster, other checkouts' tests) never see the package; and everything the test
# installed vanishes with the namespace, even when this script is killed (no purge or restore step has to run).
# Several checkouts can run it at once: each has its own dpkg database.
# Rejected: `dpkg --root`/`dpkg -x` into a scratch root does not run the maintainer scripts the way a real install
# does (--root chroots them into that root, which then needs a whole Debian system: debootstrap, minutes and the
# network); backing up and restoring what the package replaces is lost when the test is killed halfway, and races
# with anything using those files meanwhile (the quickstart's cluster loads tenancy.so at every backend start).
# Without mount namespaces or overlayfs (an unprivileged container) the package is installed for real, one checkout
# at a time, and only when nothing of it is on the machine: otherwise the test is skipped, saying why.
# Lower directories whose mounts lie beneath them (a container's /etc/hosts, /etc/resolv.conf) get those mounts back
# on top of the overlay.
SANDBOX_DIRS=(/etc /usr /var /opt /srv /home /root)
for d in /bin /sbin /lib /lib32 /lib64 /libx32; do
  [ -d "$d" ] && [ ! -L "$d" ] && SANDBOX_DIRS+=("$d") # a system without merged /usr
done
enter_sandbox() { # runs inside the new mount namespace, as the first thing
  local s=$TENANCY_TMP/sandbox d m
  local -a subs
  mkdir -p "$s"
  mount -t tmpfs -o mode=0755,size=4g tenancy-deb-sandbox "$s" || return 1
  for d in "${SANDBOX_DIRS[@]}"; do
    [ -d "$d" ] || continue
    mapfile -t subs < <(findmnt -rn -o TARGET | awk -v d="$d/" 'index($0, d) == 1')
    if [ ${#subs[@]} -gt 0 ]; then
      mkdir -p "$s/orig$d" && mount --rbind "$d" "$s/orig$d" || return 1
    fi
    mkdir -p "$s/upper$d" "$s/work$d"
    mount -t overlay tenancy-deb-sandbox -o "lowerdir=$d,upperdir=$s/upper$d,workdir=$s/work$d" "$d" || return 1
    for m in "${subs[@]}"; do mount --bind "$s/orig$m" "$m" || return 1; done
    [ "$(findmnt -n -o FSTYPE --mountpoint "$d" | tail -1)" = overlay ] || { echo "$d is not an overlay" >&2; return 1; }
  done
}
sandbox_available() { # a throw-away namespace that mounts one overlay
  unshare --mount --propagation private bash -c '
    mkdir -p "$1" && mount -t tmpfs tmpfs "$1" && mkdir "$1/u" "$1/w" &&
    mount -t overlay probe -o "lowerdir=/usr,upperdir=$1/u,workdir=$1/w" /usr && touch /usr/.probe &&
    [ -e "$1/u/.probe" ]' _ "$TENANCY_TMP/sandbox-probe" >/dev/null 2>&1
  local status=$?
  rmdir "$TENANCY_TMP/sandbox-probe" 2>/dev/null
  return $status
}

case "${TENANCY_DEB_SANDBOX:-}" in
  entering) # re-executed by the branch below, inside the namespace
    enter_sandbox || fail "could not set up the sandbox's overlays"
    export TENANCY_DEB_SANDBOX=1
    echo "== in a sandbox: overlays over ${SANDBOX_DIRS[*]} (upper layers on a tmpfs private to this namespace)" ;;
  1) ;;
  *)
    if [ "${TENANCY_DEB_SANDBOX:-}" != 0 ] && sandbox_available; then
      exec env TENANCY_DEB_SANDBOX=entering TENANCY_DEB_DIR="$deb_dir" \
        unshare --mount --propagation private bash "$0" "$@"
    fi
    echo "no sandbox (TENANCY_DEB_SANDBOX=0, or no unshare --mount with overlayfs: it needs CAP_SYS_ADMIN):" \
      "installing into the machine itself"
    # For real, then, but never over anything already there (the quickstart's make install, a developer's package).
    for p in "${PACKAGES[@]}"; do
      if dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
        echo "skipped: $p is installed on this machine and no sandbox is available to test the package beside it"
        exit 77
      fi
    done
    for d in "${debs[@]}"; do
      while IFS= read -r f; do
        if [ -e "$f" ] || [ -L "$f" ]; then
          echo "skipped: $f exists (packaging/quickstart.sh or make install?) and no sandbox is available to test" \
            "the package without replacing it"
          exit 77
        fi
      done < <(dpkg-deb -c "$d" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}')
    done
    # Several checkouts may run make check at once: one real package install at a time.
    exec 9>/run/lock/tenancy-deb-install.lock
    flock -w 600 9 || fail "another deb_install test held /run/lock/tenancy-deb-install.lock for 10 minutes" ;;
esac

# --- cleanup: whatever happens, stop what we started and purge the packages -----------------------------------
DAEMON_PID=
cleanup() {
  set +e
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null
  stop_all_clusters
  if dpkg-query -W -f='${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null | grep -qv '^not-installed$'; then
    "${APT[@]}" purge "${PACKAGES[@]}" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# A leftover install (a developer's; in the sandbox its purge is the sandbox's alone) would hide what this install
# does: start from none.
if dpkg-query -W -f='${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null | grep -qv '^not-installed$'; then
  echo "purging a previous install of ${PACKAGES[*]}"
  "${APT[@]}" purge "${PACKAGES[@]}" >/dev/null
fi
! getent passwd tenancyd >/dev/null || fail "a tenancyd user exists before the install"
[ ! -e /etc/tenancy ] || fail "/etc/tenancy exists before the install"

# --- install -----------------------------------------------------------------------------------------------------
echo "== apt-get install"
install_args=()
for d in "${debs[@]}"; do install_args+=("$(realpath "$d")"); done
"${APT[@]}" install --no-install-recommends "${install_args[@]}" >"$TENANCY_TMP/apt-install.log" 2>&1 \
  || { cat "$TENANCY_TMP/apt-install.log"; fail "apt-get install"; }
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p")" = installed ] || fail "$p is not installed"
done

echo "== what the packages installed"
[ "$(dpkg -S /usr/lib/postgresql/15/lib/tenancy.so | cut -d: -f1)" = postgresql-15-tenancy ] \
  || fail "tenancy.so does not belong to postgresql-15-tenancy"
for f in /usr/share/postgresql/15/extension/tenancy.control /usr/share/postgresql/15/extension/tenancy--0.1.0.sql \
  /usr/sbin/tenancyd "$UNIT" "$CONF" /usr/share/man/man8/tenancyd.8.gz; do
  [ -e "$f" ] || fail "$f is missing"
done
entry=$(getent passwd tenancyd) || fail "no tenancyd user"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
[ "$uid" -lt 1000 ] || fail "tenancyd is not a system user (uid $uid)"
[ "$home" = /nonexistent ] || fail "tenancyd's home is $home"
case "$shell" in */nologin | */false) ;; *) fail "tenancyd has a login shell: $shell" ;; esac
[ "$(getent group tenancyd | cut -d: -f3)" = "$gid" ] || fail "tenancyd's primary group is not tenancyd"
[ "$(stat -c '%U:%G %a' "$CONF")" = "root:tenancyd 640" ] || fail "$CONF is $(stat -c '%U:%G %a' "$CONF"), not root:tenancyd 640"
dpkg-statoverride --list "$CONF" >/dev/null || fail "no statoverride for $CONF"
grep -qx "$CONF" /var/lib/dpkg/info/tenancyd.conffiles || fail "$CONF is not a conffile"
man -w tenancyd >/dev/null || fail "man tenancyd finds no page"
# The nginx site users are given: the file transport_attacks.sh tests, a conffile, not enabled by the install.
NGINX_SITE=/etc/nginx/sites-available/tenancyd.conf
cmp -s "$NGINX_SITE" "$TENANCY_ROOT/packaging/nginx/tenancyd.conf" || fail "$NGINX_SITE differs from packaging/nginx/tenancyd.conf"
grep -qx "$NGINX_SITE" /var/lib/dpkg/info/tenancyd.conffiles || fail "$NGINX_SITE is not a conffile"
[ ! -e /etc/nginx/sites-enabled/tenancyd.conf ] || fail "the install enabled the nginx site by itself"
grep -q "^  port: 8081 " "$CONF" && grep -q "server 127.0.0.1:8081 " "$NGINX_SITE" \
  || fail "the shipped tenancyd port and the nginx upstream differ"
/usr/sbin/tenancyd --version | grep -q '0\.1\.0' || fail "tenancyd --version does not say 0.1.0"
# The dashboard and alert rules docs/operations.md tells operators to import come with the package (issue #16).
cmp -s /usr/share/tenancyd/grafana/tenancy-dashboard.json "$TENANCY_ROOT/packaging/grafana/tenancy-dashboard.json" \
  || fail "the Grafana dashboard is not in the package"
cmp -s /usr/share/tenancyd/prometheus/tenancy-alerts.yml "$TENANCY_ROOT/packaging/prometheus/tenancy-alerts.yml" \
  || fail "the Prometheus alert rules are not in the package"
# Built with _FORTIFY_SOURCE: the fortified variants of libc calls (__*_chk) are what it links against.
if command -v objdump >/dev/null; then
  # Captured first: under pipefail, grep -q leaving early kills objdump with SIGPIPE and fails the pipeline.
  dynsyms=$(objdump -T /usr/sbin/tenancyd)
  grep -q '__[a-z0-9_]*_chk' <<<"$dynsyms" || fail "tenancyd is built without _FORTIFY_SOURCE"
fi
# The unit as systemd would load it (systemd-analyze works without a running systemd).
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
fi

# The unit's own lines, run the way systemd would: as its User/Group, no new privileges, no capabilities.
unit_value() { sed -n "s/^$1=//p" "$UNIT"; }
UNIT_USER=$(unit_value User)
UNIT_GROUP=$(unit_value Group)
[ "$UNIT_USER" = tenancyd ] && [ "$UNIT_GROUP" = tenancyd ] || fail "the unit does not run as tenancyd"
AS_UNIT_USER=(setpriv --reuid="$UNIT_USER" --regid="$UNIT_GROUP" --init-groups --no-new-privs --inh-caps=-all
  --bounding-set=-all --)
as_unit_user() { "${AS_UNIT_USER[@]}" "$@"; }
EXEC_START=$(unit_value ExecStart)
EXEC_START_PRE=$(unit_value ExecStartPre)
[ -n "$EXEC_START" ] && [ -n "$EXEC_START_PRE" ] || fail "the unit has no ExecStart/ExecStartPre"

# The shipped default configuration is valid and readable by the daemon's user, and by nobody else.
# shellcheck disable=SC2086 # the unit's command line is split into words the way systemd splits it
as_unit_user $EXEC_START_PRE || fail "the shipped $CONF does not pass the unit's ExecStartPre ($EXEC_START_PRE)"
if setpriv --reuid=nobody --regid=nogroup --clear-groups -- cat "$CONF" >/dev/null 2>&1; then
  fail "$CONF is readable by nobody"
fi

# --- a cluster run by the system server, which loads the packaged module --------------------------------------
echo "== cluster with the packaged module"
export TENANCY_PGBIN=$SYSTEM_PGBIN
start_cluster deb
postmaster=$(head -1 "$CLUSTER_DIR/data/postmaster.pid")
grep -q "/usr/lib/postgresql/15/lib/tenancy.so" "/proc/$postmaster/maps" \
  || fail "the postmaster did not load /usr/lib/postgresql/15/lib/tenancy.so"
[ "$(readlink -f "/proc/$postmaster/exe")" = "$(readlink -f $SYSTEM_PGBIN/postgres)" ] || fail "not the system server"
cluster_psql -d postgres -c "CREATE EXTENSION tenancy"
EXPECTED_EXTVERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$TENANCY_ROOT/tenancy.control")
[ "$(cluster_psql -d postgres -tAc "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'")" = "$EXPECTED_EXTVERSION" ] \
  || fail "extension version is not $EXPECTED_EXTVERSION"
# The packaged upgrade path works too.
cluster_psql -d postgres -c "CREATE DATABASE upgrade_check"
cluster_psql -d upgrade_check -c "CREATE EXTENSION tenancy VERSION '0.1.0'" -c "ALTER EXTENSION tenancy UPDATE"
[ "$(cluster_psql -d upgrade_check -tAc "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'")" = "$EXPECTED_EXTVERSION" ] \
  || fail "ALTER EXTENSION tenancy UPDATE did not reach $EXPECTED_EXTVERSION"
# tenancyd's database role: a tenancy_admin member, not a superuser (the daemon refuses one).
cluster_psql -d postgres -c "CREATE ROLE tenancyd LOGIN; GRANT tenancy_admin TO tenancyd"

# --- tenancyd, started by the unit's ExecStart line ----------------------------------------------------------
echo "== tenancyd by the unit's ExecStart: $EXEC_START"
HTTP_PORT=$(free_port)
ADMIN_TOKEN=$(openssl rand -hex 32)
ADMIN_SHA=$(printf '%s' "$ADMIN_TOKEN" | openssl dgst -sha256 -r | cut -d' ' -f1)
# Writing through the existing file keeps its owner and mode, as an admin's editor would.
cat > "$CONF" <<YAML
listen: {host: 127.0.0.1, port: $HTTP_PORT}
database: {conninfo: "host=127.0.0.1 port=$CLUSTER_PORT dbname=postgres user=tenancyd", pool_size: 2}
auth: {admin_token_sha256: "$ADMIN_SHA"}
log: {level: info}
YAML
as_unit_user $EXEC_START_PRE || fail "the test configuration does not pass ExecStartPre"
# setpriv execs the daemon, so $! is the daemon's pid (as $MAINPID is for systemd).
"${AS_UNIT_USER[@]}" $EXEC_START >"$TENANCY_TMP/tenancyd.log" 2>&1 &
DAEMON_PID=$!
BASE=http://127.0.0.1:$HTTP_PORT

# Readiness as documented for Type=exec: /readyz answers 200 once the database answers.
ready=0
for _ in $(seq 1 100); do
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$TENANCY_TMP/tenancyd.log"; fail "tenancyd exited"; }
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ]; then ready=1; break; fi
  sleep 0.2
done
[ "$ready" = 1 ] || { cat "$TENANCY_TMP/tenancyd.log"; fail "/readyz never answered 200"; }
[ "$(stat -c %U "/proc/$DAEMON_PID")" = tenancyd ] || fail "tenancyd does not run as the tenancyd user"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$DAEMON_PID/status" || fail "tenancyd runs without no_new_privs"
grep -q '^CapBnd:[[:space:]]*0000000000000000' "/proc/$DAEMON_PID/status" || fail "tenancyd has capabilities"

echo "== API smoke test"
code=$(curl -s -o "$TENANCY_TMP/healthz.out" -w '%{http_code}' "$BASE/healthz")
[ "$code" = 200 ] || fail "GET /healthz answered $code"

body='{"organization_name": "Debian Smoke Co", "slug": "deb-smoke", "plan": "team", "data_residency": "eu"}'
code=$(curl -s -o "$TENANCY_TMP/create-noauth.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d "$body" "$BASE/api/v1/admin/tenants")
[ "$code" = 401 ] || fail "POST /api/v1/admin/tenants without a token answered $code, not 401"
code=$(curl -s -o "$TENANCY_TMP/create-bad.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -H "Authorization: Bearer not-$ADMIN_TOKEN" -d "$body" "$BASE/api/v1/admin/tenants")
[ "$code" = 401 ] || fail "POST /api/v1/admin/tenants with a wrong token answered $code, not 401"

code=$(curl -s -o "$TENANCY_TMP/create.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -H "Authorization: Bearer $ADMIN_TOKEN" -d "$body" "$BASE/api/v1/admin/tenants")
[ "$code" = 201 ] || { cat "$TENANCY_TMP/create.out"; fail "POST /api/v1/admin/tenants answered $code, not 201"; }
jq -e '.slug == "deb-smoke" and .status == "trial" and .plan == "team" and .data_residency == "eu"
       and (.id | test("^[0-9a-f-]{36}$")) and (.trial_ends_at | type == "string")' "$TENANCY_TMP/create.out" \
  >/dev/null || { cat "$TENANCY_TMP/create.out"; fail "unexpected tenant in the 201 answer"; }
tenant_id=$(jq -r .id "$TENANCY_TMP/create.out")
[ "$(cluster_psql -d postgres -tAc "SELECT slug FROM tenancy.tenants WHERE id = '$tenant_id'")" = deb-smoke ] \
  || fail "the tenant is not in tenancy.tenants"

# The same slug again is a conflict, reported with the SQLSTATE.
code=$(curl -s -o "$TENANCY_TMP/create-dup.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -H "Authorization: Bearer $ADMIN_TOKEN" -d "$body" "$BASE/api/v1/admin/tenants")
[ "$code" = 409 ] && jq -e '.error.sqlstate == "23505"' "$TENANCY_TMP/create-dup.out" >/dev/null \
  || { cat "$TENANCY_TMP/create-dup.out"; fail "a duplicate slug answered $code"; }

# The metrics the dashboard and alert rules query are the ones the daemon exports.
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")
[ "$code" = 401 ] || fail "GET /metrics without a token answered $code (it needs the admin or scrape token)"
curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/metrics" >"$TENANCY_TMP/metrics.out" || fail "GET /metrics"
for m in "tenancy_tenant_requests_total counter" "tenancy_tenant_response_seconds histogram" \
  "tenancy_tenant_active_users gauge" "tenancy_tenant_quota_utilization_percent gauge"; do
  grep -qx "# TYPE $m" "$TENANCY_TMP/metrics.out" || fail "/metrics has no '# TYPE $m'"
done
grep -q '^tenancy_tenant_requests_total{.*status="201"} 1$' "$TENANCY_TMP/metrics.out" \
  || fail "/metrics did not count the 201"

# --- reload and stop, as the unit does them -------------------------------------------------------------------
echo "== reload (ExecReload) and stop"
while IFS= read -r line; do
  line=${line//\$MAINPID/$DAEMON_PID}
  # shellcheck disable=SC2086
  case "$line" in
    /bin/kill*) $line ;;                       # systemd runs ExecReload as the unit's user; root may signal it too
    *) as_unit_user $line ;;
  esac || fail "ExecReload line failed: $line"
done < <(unit_value ExecReload)
for _ in $(seq 1 50); do
  grep -q 'reloaded' "$TENANCY_TMP/tenancyd.log" && break
  sleep 0.1
done
grep -q 'reloaded' "$TENANCY_TMP/tenancyd.log" || { cat "$TENANCY_TMP/tenancyd.log"; fail "SIGHUP did not reload"; }
kill -0 "$DAEMON_PID" || fail "tenancyd died on reload"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] || fail "/healthz after reload"

kill -TERM "$DAEMON_PID"
status=0
wait "$DAEMON_PID" || status=$?
DAEMON_PID=
[ "$status" = 0 ] || { cat "$TENANCY_TMP/tenancyd.log"; fail "tenancyd exited with $status on SIGTERM"; }
stop_all_clusters

# --- purge: nothing of either package is left -------------------------------------------------------------------
echo "== apt-get purge"
files=()
for d in "${debs[@]}"; do
  while IFS= read -r f; do files+=("$f"); done < <(dpkg-deb -c "$d" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}')
done
"${APT[@]}" purge "${PACKAGES[@]}" >"$TENANCY_TMP/apt-purge.log" 2>&1 || { cat "$TENANCY_TMP/apt-purge.log"; fail "purge"; }
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || echo not-installed)" = not-installed ] \
    || fail "$p is still known to dpkg after purge"
done
for f in "${files[@]}" /etc/tenancy /usr/share/doc/tenancyd /usr/share/doc/postgresql-15-tenancy; do
  [ ! -e "$f" ] || fail "$f is left after purge"
done
! getent passwd tenancyd >/dev/null || fail "the tenancyd user is left after purge"
! getent group tenancyd >/dev/null || fail "the tenancyd group is left after purge"
! dpkg-statoverride --list "$CONF" >/dev/null || fail "the statoverride is left after purge"
if [ "${TENANCY_DEB_SANDBOX:-}" = 1 ]; then
  echo "the sandbox's upper layers hold $(df -m --output=used "$TENANCY_TMP/sandbox" | tail -1 | tr -d ' ') MiB" \
    "(what the install and purge wrote; the machine's own files were not written)"
fi
echo "deb install, smoke test and purge ok (${#files[@]} packaged files removed)"
