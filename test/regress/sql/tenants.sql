-- tenants: the registry API (create, get, update, delete, hierarchy, JSON form) and every error path
\set VERBOSITY terse
-- create: defaults, then every argument
SELECT slug, organization_name, display_name, status, plan, data_residency, configuration, parent_tenant_id IS NULL AS root,
       trial_ends_at = created_at + interval '30 days' AS trial_30_days, created_at = updated_at AS fresh
  FROM tenancy.create_tenant('Acme Corporation', 'acme-corp');
SELECT slug, plan, data_residency, display_name
  FROM tenancy.create_tenant('Globex', 'globex', plan => 'enterprise', data_residency => 'eu', display_name => 'Globex EU');
SELECT (tenancy.create_tenant('Initech', 'initech', 'team', 'uk', admin_email => 'Boss@Initech.COM')).slug;
SELECT u.email, u.role, u.status FROM tenancy.users u JOIN tenancy.tenants t ON t.id = u.tenant_id WHERE t.slug = 'initech';
-- get by id and by slug
SELECT (tenancy.get_tenant(id)).slug FROM tenancy.tenants WHERE slug = 'globex';
SELECT (tenancy.get_tenant_by_slug('globex')).organization_name;

-- hierarchy: acme-corp > acme-eu > acme-eu-dev, acme-corp > acme-us
SELECT slug FROM tenancy.create_tenant('Acme EU', 'acme-eu', parent_tenant_id => (SELECT id FROM tenancy.tenants WHERE slug = 'acme-corp'));
SELECT slug FROM tenancy.create_tenant('Acme EU Dev', 'acme-eu-dev', parent_tenant_id => (SELECT id FROM tenancy.tenants WHERE slug = 'acme-eu'));
SELECT slug FROM tenancy.create_tenant('Acme US', 'acme-us', parent_tenant_id => (SELECT id FROM tenancy.tenants WHERE slug = 'acme-corp'));
CREATE FUNCTION pg_temp.tid(s text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM tenancy.tenants WHERE slug = s $$;
SELECT t.slug FROM tenancy.tenant_descendants(pg_temp.tid('acme-corp')) d JOIN tenancy.tenants t ON t.id = d ORDER BY 1;
SELECT t.slug FROM tenancy.tenant_ancestors(pg_temp.tid('acme-eu-dev')) WITH ORDINALITY a(id, n) JOIN tenancy.tenants t USING (id) ORDER BY n;
SELECT count(*) FROM tenancy.tenant_descendants(pg_temp.tid('acme-us'));
SELECT count(*) FROM tenancy.tenant_ancestors(pg_temp.tid('acme-corp'));
-- re-parent acme-eu-dev under acme-us, then back to the root
SELECT (tenancy.update_tenant(pg_temp.tid('acme-eu-dev'), jsonb_build_object('parent_tenant_id', pg_temp.tid('acme-us')))).parent_tenant_id = pg_temp.tid('acme-us') AS moved;
SELECT t.slug FROM tenancy.tenant_ancestors(pg_temp.tid('acme-eu-dev')) WITH ORDINALITY a(id, n) JOIN tenancy.tenants t USING (id) ORDER BY n;
SELECT (tenancy.update_tenant(pg_temp.tid('acme-eu-dev'), '{"parent_tenant_id": null}')).parent_tenant_id IS NULL AS root;

-- update: plain fields, configuration merged deeply (null removes a key)
SELECT display_name, organization_name, plan, data_residency
  FROM tenancy.update_tenant(pg_temp.tid('acme-corp'), '{"display_name": "Acme", "organization_name": "Acme Corp.", "plan": "team", "data_residency": "canada"}');
SELECT configuration FROM tenancy.update_tenant(pg_temp.tid('acme-corp'), '{"configuration": {"branding": {"color": "red", "logo": "a.png"}, "features": {"ai": true}}}');
SELECT configuration FROM tenancy.update_tenant(pg_temp.tid('acme-corp'), '{"configuration": {"branding": {"color": "blue", "logo": null, "font": {"size": 12, "x": null}}, "features": null}}');
SELECT updated_at >= created_at AS touched FROM tenancy.get_tenant(pg_temp.tid('acme-corp'));
-- an update that changes nothing writes nothing
SELECT count(*) AS events_before FROM tenancy.audit_log WHERE tenant_id = pg_temp.tid('acme-corp') \gset
SELECT display_name FROM tenancy.update_tenant(pg_temp.tid('acme-corp'), '{"display_name": "Acme"}');
SELECT count(*) = :events_before AS no_new_event FROM tenancy.audit_log WHERE tenant_id = pg_temp.tid('acme-corp');

-- status machine: trial -> active -> suspended -> active -> cancelled
SELECT status FROM tenancy.update_tenant(pg_temp.tid('globex'), '{"status": "active"}');
SELECT status FROM tenancy.update_tenant(pg_temp.tid('globex'), '{"status": "suspended"}');
SELECT status FROM tenancy.update_tenant(pg_temp.tid('globex'), '{"status": "active"}');
SELECT status FROM tenancy.update_tenant(pg_temp.tid('initech'), '{"status": "suspended"}');
SELECT status FROM tenancy.update_tenant(pg_temp.tid('initech'), '{"status": "cancelled"}');

-- tenant_json: the API shape with effective quotas and RFC 3339 UTC timestamps
SELECT jsonb_object_keys(tenancy.tenant_json(pg_temp.tid('globex'))) ORDER BY 1;
SELECT tenancy.tenant_json(pg_temp.tid('globex')) -> 'quotas' AS quotas;
SELECT j ->> 'created_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' AS rfc3339,
       (j ->> 'trial_ends_at')::timestamptz = (j ->> 'created_at')::timestamptz + interval '30 days' AS trial_30_days,
       j ->> 'slug' AS slug, j ->> 'status' AS status, j ->> 'plan' AS plan
  FROM tenancy.tenant_json(pg_temp.tid('globex')) j;
-- quotas follow plan edits and per-tenant overrides
UPDATE tenancy.plans SET max_projects = 77 WHERE plan = 'enterprise';
INSERT INTO tenancy.quota_overrides VALUES (pg_temp.tid('globex'), 'users', 3);
SELECT tenancy.tenant_json(pg_temp.tid('globex')) -> 'quotas' ->> 'max_projects' AS max_projects,
       tenancy.tenant_json(pg_temp.tid('globex')) -> 'quotas' ->> 'max_users' AS max_users,
       tenancy._effective_limit(pg_temp.tid('globex'), 'users') AS users_limit,
       tenancy._effective_limit(pg_temp.tid('globex'), 'api_calls') AS api_limit;
UPDATE tenancy.plans SET max_projects = 999999 WHERE plan = 'enterprise';

-- usability: active and unexpired trials are usable; an expired trial is not (TN002)
SELECT tenancy._require_usable_tenant(pg_temp.tid('globex'));
SELECT tenancy._require_usable_tenant(pg_temp.tid('acme-corp'));
UPDATE tenancy.tenants SET trial_ends_at = now() - interval '1 second' WHERE slug = 'acme-us';

-- delete without erase: cancelled, data kept; cancelled is final
SELECT tenancy.delete_tenant(pg_temp.tid('acme-eu-dev'));
SELECT status FROM tenancy.get_tenant(pg_temp.tid('acme-eu-dev'));
SELECT tenancy.delete_tenant(pg_temp.tid('acme-eu-dev'));
-- delete with erase: the tenant's rows in isolated tables, its keys and the registry rows go, the audit log keeps
-- the history
CREATE TABLE regress_notes (id serial PRIMARY KEY, tenant_id uuid NOT NULL, body text);
SELECT tenancy.enable_isolation('regress_notes');
INSERT INTO regress_notes (tenant_id, body)
  SELECT pg_temp.tid(s), s || ' note' FROM unnest(ARRAY['initech', 'initech', 'globex']) s;
SELECT pg_temp.tid('initech') AS initech_id \gset
SELECT count(*) > 0 AS had_keys FROM tenancy.tenant_keys WHERE tenant_id = :'initech_id';
SELECT tenancy.delete_tenant(:'initech_id', erase => true);
SELECT body FROM regress_notes ORDER BY id;
DROP TABLE regress_notes;
SELECT count(*) AS keys_left FROM tenancy.tenant_keys WHERE tenant_id = :'initech_id';
SELECT count(*) FROM tenancy.tenants WHERE slug = 'initech';
SELECT count(*) FROM tenancy.users u WHERE NOT EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id = u.tenant_id);
SELECT action FROM tenancy.audit_log WHERE after ->> 'slug' = 'initech' OR before ->> 'slug' = 'initech' ORDER BY id;

-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.create_tenant('Dup', 'acme-corp');
SELECT tenancy.create_tenant('Bad', 'Bad_Slug');
SELECT tenancy.create_tenant('Bad', 'ab');
SELECT tenancy.create_tenant('Bad', NULL);
SELECT tenancy.create_tenant('', 'empty-org');
SELECT tenancy.create_tenant(NULL, 'null-org');
SELECT tenancy.create_tenant(repeat('x', 256), 'long-org');
\set VERBOSITY terse
SELECT tenancy.create_tenant('Long', 'long-display', display_name => repeat('x', 256));
SELECT tenancy.update_tenant(pg_temp.tid('globex'), jsonb_build_object('display_name', repeat('x', 256)));
\set VERBOSITY sqlstate
SELECT tenancy.create_tenant('Bad', 'bad-plan', plan => 'platinum');
SELECT tenancy.create_tenant('Bad', 'bad-region', data_residency => 'mars');
SELECT tenancy.create_tenant('Bad', 'bad-email', admin_email => 'not-an-email');
SELECT tenancy.create_tenant('Bad', 'bad-parent', parent_tenant_id => '00000000-0000-0000-0000-000000000001');
SELECT tenancy.get_tenant('00000000-0000-0000-0000-000000000001');
SELECT tenancy.get_tenant_by_slug('nobody');
SELECT tenancy.tenant_json('00000000-0000-0000-0000-000000000001');
SELECT tenancy.tenant_descendants('00000000-0000-0000-0000-000000000001');
SELECT tenancy.tenant_ancestors('00000000-0000-0000-0000-000000000001');
SELECT tenancy.update_tenant('00000000-0000-0000-0000-000000000001', '{}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '[]');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), NULL);
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"colour": "red"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"slug": "new-slug"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"id": "00000000-0000-0000-0000-000000000001"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"quotas": {}}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"trial_ends_at": "2030-01-01T00:00:00Z"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"encryption_key_id": "k"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"created_at": "2020-01-01T00:00:00Z"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"updated_at": "2020-01-01T00:00:00Z"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"display_name": 42}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"organization_name": null}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"organization_name": ""}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"plan": "platinum"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"plan": ["team"]}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"data_residency": "mars"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"status": "deleted"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"status": "trial"}');
SELECT tenancy.update_tenant(pg_temp.tid('initech-gone'), '{"status": "active"}');
SELECT tenancy.update_tenant(pg_temp.tid('acme-eu-dev'), '{"status": "active"}');
SELECT tenancy.update_tenant(pg_temp.tid('acme-eu-dev'), '{"status": "trial"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"configuration": "red"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"configuration": null}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"parent_tenant_id": "not-a-uuid"}');
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"parent_tenant_id": 7}');
-- a bad key next to a good one changes nothing
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"display_name": "Changed", "slug": "x-y-z"}');
SELECT display_name FROM tenancy.get_tenant(pg_temp.tid('globex'));
-- hierarchy errors: missing parent, self, cycle (TN007)
SELECT tenancy.update_tenant(pg_temp.tid('globex'), '{"parent_tenant_id": "00000000-0000-0000-0000-000000000001"}');
SELECT tenancy.update_tenant(pg_temp.tid('acme-corp'), jsonb_build_object('parent_tenant_id', pg_temp.tid('acme-corp')));
SELECT tenancy.update_tenant(pg_temp.tid('acme-corp'), jsonb_build_object('parent_tenant_id', pg_temp.tid('acme-eu')));
SELECT tenancy.update_tenant(pg_temp.tid('acme-corp'), jsonb_build_object('parent_tenant_id', pg_temp.tid('acme-us')));
-- erase refuses a tenant with children (TN007); missing tenants are TN001
SELECT tenancy.delete_tenant(pg_temp.tid('acme-corp'), true);
SELECT tenancy.delete_tenant('00000000-0000-0000-0000-000000000001');
SELECT tenancy.delete_tenant(pg_temp.tid('globex'), NULL);
-- an expired trial, a suspended and a cancelled tenant are not usable (TN002); a missing one is TN001
SELECT tenancy._require_usable_tenant(pg_temp.tid('acme-us'));
SELECT tenancy._require_usable_tenant(pg_temp.tid('acme-eu-dev'));
SELECT tenancy._require_usable_tenant('00000000-0000-0000-0000-000000000001');
SELECT tenancy._effective_limit(pg_temp.tid('globex'), 'bananas');
SELECT tenancy._effective_limit('00000000-0000-0000-0000-000000000001', 'users');
-- a hierarchy deeper than 32 levels is refused
\set VERBOSITY terse
DO $$
DECLARE parent uuid := NULL; t tenancy.tenants;
BEGIN
  FOR i IN 1..32 LOOP
    t := tenancy.create_tenant('Deep ' || i, 'deep-' || i, parent_tenant_id => parent);
    parent := t.id;
  END LOOP;
END $$;
SELECT count(*) FROM tenancy.tenant_descendants(pg_temp.tid('deep-1'));
SELECT count(*) FROM tenancy.tenant_ancestors(pg_temp.tid('deep-32'));
\set VERBOSITY sqlstate
SELECT tenancy.create_tenant('Deep 33', 'deep-33', parent_tenant_id => pg_temp.tid('deep-32'));
SELECT tenancy.update_tenant(pg_temp.tid('acme-us'), jsonb_build_object('parent_tenant_id', pg_temp.tid('deep-32')));
\set VERBOSITY terse
SELECT count(*) AS audit_problems FROM tenancy.verify_audit_log();
