-- crypto_descendants: an app role may use the keys of its context tenant and, while a table is isolated with
-- include_descendants, of that tenant's descendants; never a parent's, a sibling's or an unrelated tenant's (42501)
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT id AS root FROM tenancy.create_tenant('Root Keys', 'root-keys') \gset
SELECT id AS child FROM tenancy.create_tenant('Child Keys', 'child-keys', parent_tenant_id => :'root') \gset
SELECT id AS grandchild FROM tenancy.create_tenant('Grandchild Keys', 'grandchild-keys', parent_tenant_id => :'child') \gset
SELECT id AS sibling FROM tenancy.create_tenant('Sibling Keys', 'sibling-keys', parent_tenant_id => :'root') \gset
SELECT id AS other FROM tenancy.create_tenant('Other Keys', 'other-keys') \gset
CREATE ROLE regress_cdesc_app;
GRANT tenancy_app TO regress_cdesc_app;
-- a ciphertext of every tenant, made by the superuser
CREATE TABLE cdesc_cipher AS
  SELECT name, id, tenancy.encrypt(id, 'secret of ' || name) AS ct, tenancy.encrypt_bytea(id, '\x00ff'::bytea) AS ctb
    FROM (VALUES ('root', :'root'::uuid), ('child', :'child'::uuid), ('grandchild', :'grandchild'::uuid),
                 ('sibling', :'sibling'::uuid), ('other', :'other'::uuid)) v(name, id);
GRANT SELECT ON cdesc_cipher TO regress_cdesc_app;

-- Every key use an app role can make, from one context: encrypt, decrypt and their bytea forms with each tenant's id.
-- One statement each (set_tenant lasts for the statement), the SQLSTATE when refused.
CREATE FUNCTION public.cdesc_key_uses(context uuid)
RETURNS TABLE (tenant text, encrypt text, decrypt text, encrypt_bytea text, decrypt_bytea text)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  PERFORM tenancy.set_tenant(context);
  FOR r IN SELECT name, id, ct, ctb FROM public.cdesc_cipher ORDER BY name LOOP
    tenant := r.name;
    BEGIN
      encrypt := CASE WHEN tenancy.decrypt(r.id, tenancy.encrypt(r.id, 'x')) = 'x' THEN 'ok' END;
    EXCEPTION WHEN OTHERS THEN encrypt := SQLSTATE;
    END;
    BEGIN
      decrypt := tenancy.decrypt(r.id, r.ct);
    EXCEPTION WHEN OTHERS THEN decrypt := SQLSTATE;
    END;
    BEGIN
      encrypt_bytea := CASE WHEN octet_length(tenancy.encrypt_bytea(r.id, '\x01'::bytea)) = 34 THEN 'ok' END;
    EXCEPTION WHEN OTHERS THEN encrypt_bytea := SQLSTATE;
    END;
    BEGIN
      decrypt_bytea := tenancy.decrypt_bytea(r.id, r.ctb)::text;
    EXCEPTION WHEN OTHERS THEN decrypt_bytea := SQLSTATE;
    END;
    RETURN NEXT;
  END LOOP;
END $$;

-- no table is isolated with include_descendants: only the context tenant's own key
SELECT count(*) AS include_descendants_tables FROM tenancy.isolation_config WHERE include_descendants;
SET ROLE regress_cdesc_app;
SELECT * FROM public.cdesc_key_uses(:'child');
RESET ROLE;

-- a plain isolated table does not widen it either
CREATE TABLE cdesc_plain (tenant_id uuid NOT NULL, body text);
SELECT tenancy.enable_isolation('cdesc_plain');
SET ROLE regress_cdesc_app;
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'child') WHERE tenant = 'grandchild';
RESET ROLE;

-- with an include_descendants table, the child context reads its descendants' rows and may use their keys;
-- its parent's, its sibling's and an unrelated tenant's stay refused
CREATE TABLE cdesc_notes (tenant_id uuid NOT NULL, body text);
SELECT tenancy.enable_isolation('cdesc_notes', include_descendants => true);
GRANT SELECT, INSERT ON cdesc_notes TO regress_cdesc_app;
INSERT INTO cdesc_notes SELECT id, ct FROM cdesc_cipher;
SET ROLE regress_cdesc_app;
SELECT * FROM public.cdesc_key_uses(:'child');
-- the use the clause exists for: decrypt every row the context can read
BEGIN;
SELECT tenancy.set_tenant(:'child');
SELECT tenancy.decrypt(tenant_id, body) AS readable FROM cdesc_notes ORDER BY 1;
COMMIT;
-- descendants only, whatever the depth: the root context reaches all but the unrelated tenant; a leaf only itself
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'root');
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'grandchild');
-- a descendant's key never opens another tenant's ciphertext (the tenant id is authenticated)
\set VERBOSITY sqlstate
BEGIN;
SELECT tenancy.set_tenant(:'child');
SELECT tenancy.decrypt(:'grandchild', ct) FROM cdesc_cipher WHERE name = 'child';
ROLLBACK;
-- no context at all: refused, descendant or not
SELECT tenancy.encrypt(:'grandchild', 'x');
SELECT tenancy.decrypt(:'child', ct) FROM cdesc_cipher WHERE name = 'child';
\set VERBOSITY terse
RESET ROLE;

-- the hierarchy changes: the grandchild moves under the unrelated tenant. The child context is refused at once (the
-- tenant cache is flushed in this session too), the new parent's context may use it.
SELECT (tenancy.update_tenant(:'grandchild', jsonb_build_object('parent_tenant_id', :'other'))).parent_tenant_id = :'other' AS moved;
SET ROLE regress_cdesc_app;
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'child') WHERE tenant IN ('grandchild', 'child');
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'other') WHERE tenant IN ('grandchild', 'other');
RESET ROLE;
SELECT (tenancy.update_tenant(:'grandchild', jsonb_build_object('parent_tenant_id', :'child'))).parent_tenant_id = :'child' AS moved_back;
SET ROLE regress_cdesc_app;
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'child') WHERE tenant = 'grandchild';
RESET ROLE;

-- include_descendants switched off again (disable_isolation): refused at once
SELECT tenancy.disable_isolation('cdesc_notes');
SET ROLE regress_cdesc_app;
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'child') WHERE tenant = 'grandchild';
RESET ROLE;
-- and on again by re-enabling with include_descendants, off by re-enabling without it (idempotent enable)
SELECT tenancy.enable_isolation('cdesc_notes', include_descendants => true);
SET ROLE regress_cdesc_app;
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'child') WHERE tenant = 'grandchild';
RESET ROLE;
SELECT tenancy.enable_isolation('cdesc_notes', include_descendants => false);
SET ROLE regress_cdesc_app;
SELECT tenant, encrypt, decrypt FROM public.cdesc_key_uses(:'child') WHERE tenant = 'grandchild';
RESET ROLE;

-- an admin names any tenant without a context, as before
SELECT tenancy.decrypt(id, ct) AS admin_reads FROM cdesc_cipher ORDER BY 1;

-- the scope trigger cannot be called directly
\set VERBOSITY sqlstate
SELECT tenancy._crypto_scope_changed();
\set VERBOSITY terse

-- the admin check is cached per role: GRANT, REVOKE (also of an intermediate role) and NOINHERIT take effect in
-- this session at once, with no key use as another role in between
CREATE ROLE regress_cdesc_mid;
\set VERBOSITY sqlstate
SET ROLE regress_cdesc_app;
SELECT tenancy.decrypt(:'other', ct) AS before_grant FROM cdesc_cipher WHERE name = 'other';
RESET ROLE;
GRANT tenancy_admin TO regress_cdesc_mid;
GRANT regress_cdesc_mid TO regress_cdesc_app;
SET ROLE regress_cdesc_app;
SELECT tenancy.decrypt(:'other', ct) AS granted_through_mid FROM cdesc_cipher WHERE name = 'other';
RESET ROLE;
REVOKE tenancy_admin FROM regress_cdesc_mid;
SET ROLE regress_cdesc_app;
SELECT tenancy.decrypt(:'other', ct) AS revoked_from_mid FROM cdesc_cipher WHERE name = 'other';
RESET ROLE;
GRANT tenancy_admin TO regress_cdesc_app;
SET ROLE regress_cdesc_app;
SELECT tenancy.encrypt(:'other', 'x') IS NOT NULL AS granted_directly;
RESET ROLE;
GRANT tenancy_admin TO regress_cdesc_mid;
REVOKE tenancy_admin FROM regress_cdesc_app;
ALTER ROLE regress_cdesc_app NOINHERIT;
SET ROLE regress_cdesc_app;
SELECT tenancy.encrypt(:'other', 'x') IS NOT NULL AS noinherit;
RESET ROLE;
ALTER ROLE regress_cdesc_app INHERIT;
SET ROLE regress_cdesc_app;
SELECT tenancy.encrypt(:'other', 'x') IS NOT NULL AS inherit_again;
RESET ROLE;
REVOKE regress_cdesc_mid FROM regress_cdesc_app;
SET ROLE regress_cdesc_app;
SELECT tenancy.encrypt(:'other', 'x') IS NOT NULL AS mid_revoked;
RESET ROLE;
DROP ROLE regress_cdesc_mid;
\set VERBOSITY terse

SELECT tenancy.disable_isolation('cdesc_notes');
SELECT tenancy.disable_isolation('cdesc_plain');
DROP TABLE cdesc_notes, cdesc_plain, cdesc_cipher;
DROP FUNCTION public.cdesc_key_uses(uuid);
DROP ROLE regress_cdesc_app;
