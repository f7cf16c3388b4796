#!/usr/bin/env bash
# test/integration/audit_reserved_actions.sh
# Every audit action the extension writes itself, collected from the sources (C and SQL), is refused to an
# application role by tenancy._audit (42501): a new event added without reserving its name fails here.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

actions=$(python3 - "$TENANCY_ROOT" <<'PY'
import os, re, sys
root = sys.argv[1]
# call -> index of the action argument
calls = {"WriteAuditEvent(": 0, "WriteAuditEventOutside(": 1, "tenancy._audit(": 0, "Audit(": 0}
literal = re.compile(r"""["']([a-z][a-z0-9]*(?:_[a-z0-9]+)+)["']""")
def arguments(text):
    """the top-level comma-separated arguments of the call whose '(' text starts after"""
    depth, args, cur = 0, [], ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                args.append(cur)
                return args
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(cur); cur = ""; continue
        cur += ch
    return args
found = set()
for sub in ("extension", "sql/src"):
    for dirpath, _, files in os.walk(os.path.join(root, sub)):
        for f in files:
            if not f.endswith((".cpp", ".hpp", ".sql")):
                continue
            text = open(os.path.join(dirpath, f)).read()
            for call, index in calls.items():
                for m in re.finditer(re.escape(call), text):
                    if call == "Audit(" and text[m.start() - 1:m.start()].isalnum():
                        continue  # WriteAuditEvent( and the like, handled above
                    args = arguments(text[m.end():])
                    if len(args) > index:
                        found.update(literal.findall(args[index]))
            for m in re.finditer(r'->action = "([a-z_]+)"', text):
                found.add(m.group(1))
print(" ".join(sorted(found)))
PY
)
echo "actions the extension writes: $actions"
[ "$(echo "$actions" | wc -w)" -ge 30 ] || { echo "FAIL: too few actions found in the sources"; exit 1; }

start_cluster reserved
cluster_psql -d postgres -q <<'SQL'
CREATE EXTENSION tenancy;
CREATE ROLE reserved_app LOGIN IN ROLE tenancy_app;
SELECT count(*) FROM (SELECT tenancy.create_tenant('Reserved', 'reserved')) s;
SQL
tenant=$(cluster_psql -d postgres -At -c "SELECT id FROM tenancy.tenants WHERE slug = 'reserved'")
array=$(printf "'%s'," $actions); array="ARRAY[${array%,}]"
as_pg psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$CLUSTER_PORT" -U reserved_app -d postgres <<SQL
BEGIN;
SELECT tenancy.set_tenant('$tenant');
DO \$\$
DECLARE
  a text;
  accepted text[] := '{}';
BEGIN
  FOREACH a IN ARRAY $array LOOP
    BEGIN
      PERFORM tenancy._audit(a, tenancy.current_tenant_id(), NULL, NULL);
      accepted := accepted || a;
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
  END LOOP;
  IF cardinality(accepted) > 0 THEN
    RAISE EXCEPTION 'FAIL: tenancy_app may write the extension''s own actions: %', accepted;
  END IF;
  -- a name of the application's own still passes
  PERFORM tenancy._audit('app.order_shipped', tenancy.current_tenant_id(), NULL, NULL);
END
\$\$;
COMMIT;
SQL
echo "audit_reserved_actions: ok"
