# test/lib/system_state.sh
# shellcheck shell=bash
# system_state: prints what make check must leave as it found it, one line per item, for test/run-tests.sh to take
# before the tests and compare after them (the pseudo-test "system_unchanged"):
# - tenancy's files in the system's directories: what `make install` and packaging/quickstart.sh put in the server's
#   pkglibdir and sharedir/extension and in /usr/local/bin, and what the Debian packages own (checksum, owner, mode);
# - the dpkg state of the two packages, and the tenancyd user, group and statoverride their maintainer scripts make;
# - the quickstart's processes (its cluster, tenancyd and nginx, from their pid files): running or not, and which pid.
# Sourced, not executed. Uses PG_CONFIG (default pg_config) and TENANCY_STATE_DIR (the quickstart's, default
# /var/lib/tenancy-dev).
system_state() {
  local pg_config=${PG_CONFIG:-pg_config} state=${TENANCY_STATE_DIR:-/var/lib/tenancy-dev} f pidfile pid
  local -a files=()
  local pkglibdir sharedir
  pkglibdir=$("$pg_config" --pkglibdir) sharedir=$("$pg_config" --sharedir) || return 1
  shopt -s nullglob
  files+=("$pkglibdir"/tenancy*.so "$sharedir"/extension/tenancy[.-]* /usr/local/bin/tenancyd /usr/sbin/tenancyd
    /lib/systemd/system/tenancyd.service /etc/nginx/sites-available/tenancyd.conf
    /etc/nginx/sites-enabled/tenancyd.conf /usr/share/man/man8/tenancyd.8.gz)
  [ -d /etc/tenancy ] && files+=(/etc/tenancy /etc/tenancy/*)
  shopt -u nullglob
  for f in "${files[@]}"; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    if [ -f "$f" ]; then
      echo "file $f $(stat -c '%U:%G %a' "$f") $(sha256sum <"$f" | cut -d' ' -f1)"
    else
      echo "file $f $(stat -c '%F %U:%G %a' "$f")"
    fi
  done
  echo "dpkg $(dpkg-query -W -f='${Package} ${db:Status-Abbrev}${Version}\n' postgresql-15-tenancy tenancyd 2>/dev/null |
    sort | tr '\n' ' ')"
  echo "user $(getent passwd tenancyd || echo none)"
  echo "group $(getent group tenancyd || echo none)"
  echo "statoverride $(dpkg-statoverride --list /etc/tenancy/tenancyd.yaml 2>/dev/null || echo none)"
  for pidfile in "$state/pgdata/postmaster.pid" "$state/tenancyd.pid" "$state-nginx/nginx.pid"; do
    pid=$(head -1 "$pidfile" 2>/dev/null) || pid=
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      echo "process $pidfile running pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-120))"
    elif [ -e "$pidfile" ]; then
      echo "process $pidfile not running"
    fi
  done
}
