-- tenant_config_cap: configuration has a size cap (issue #16: the deep merge let it grow without bound) and an update
-- is audited as what changed (old and new values of the changed keys), never as two whole rows.
\set VERBOSITY sqlstate
SELECT slug FROM tenancy.create_tenant('Cap Co', 'cap-co', 'team');
CREATE FUNCTION pg_temp.tid() RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM tenancy.tenants WHERE slug = 'cap-co' $$;
-- 60 000 bytes fit; 12 more PATCHes of 10 000 bytes each do not: refused with 54000 and nothing is kept
SELECT pg_catalog.octet_length(configuration::text) > 60000 AS big
  FROM tenancy.update_tenant(pg_temp.tid(), jsonb_build_object('configuration', jsonb_build_object('blob', repeat('x', 60000))));
SELECT tenancy.update_tenant(pg_temp.tid(), jsonb_build_object('configuration', jsonb_build_object('more', repeat('y', 10000))));
SELECT pg_catalog.octet_length(configuration::text) < 65536 AS within_cap, configuration ? 'more' AS more_kept
  FROM tenancy.tenants WHERE id = pg_temp.tid();
-- one PATCH over the cap by itself, and one of a deep document
SELECT tenancy.update_tenant(pg_temp.tid(), jsonb_build_object('configuration', jsonb_build_object('n', repeat('z', 70000))));
-- removing a key brings it back under: the cap is on the result, not on the history
SELECT configuration ? 'blob' AS blob FROM tenancy.update_tenant(pg_temp.tid(), '{"configuration": {"blob": null}}');
SELECT pg_catalog.octet_length(configuration::text) AS bytes FROM tenancy.update_tenant(pg_temp.tid(),
  jsonb_build_object('configuration', jsonb_build_object('more', repeat('y', 10000))));
-- the message names the limit
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT tenancy.update_tenant(pg_temp.tid(), jsonb_build_object('configuration', jsonb_build_object('n', repeat('z', 70000))));
\set VERBOSITY sqlstate

-- audit rows hold the change only
SELECT coalesce(max(id), 0) AS start_id FROM tenancy.audit_log \gset
SELECT display_name FROM tenancy.update_tenant(pg_temp.tid(),
  '{"display_name": "Cap", "configuration": {"features": {"sso": true, "seats": 5}, "theme": "dark"}}');
SELECT display_name FROM tenancy.update_tenant(pg_temp.tid(),
  '{"configuration": {"features": {"seats": 6, "beta": [1, 2]}, "theme": null}}');
SELECT before, after FROM tenancy.audit_log WHERE id > :start_id AND action = 'tenant_updated' ORDER BY id;
-- the 10 000-byte value that did not change is in no event, and no event is bigger than its change
SELECT max(pg_catalog.octet_length(before::text) + pg_catalog.octet_length(after::text)) < 1000 AS small
  FROM tenancy.audit_log WHERE id > :start_id AND action = 'tenant_updated';
-- a no-op change writes no event
SELECT display_name FROM tenancy.update_tenant(pg_temp.tid(), '{"configuration": {"features": {"seats": 6}}}');
SELECT count(*) AS events FROM tenancy.audit_log WHERE id > :start_id AND action = 'tenant_updated';
-- the diff itself: added, changed (nested), removed
SELECT tenancy._jsonb_diff('{"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}', '{"a": 1, "b": {"c": 4}, "f": null, "e": [1, 2]}');
SELECT tenancy._jsonb_diff('{}', '{}') AS same, tenancy._jsonb_diff('{"x": {"y": 1}}', '{"x": 5}') AS replaced;
SELECT tenancy.delete_tenant(pg_temp.tid(), erase => true);
