-- hostile_search_path: an ordinary role (a tenancy_app member, nothing more) plants look-alikes of pg_catalog's
-- types in pg_temp (searched before pg_catalog for types unless the search_path lists it later) and of its
-- operators in its own schema (first in its search_path), then makes the extension run SQL with more rights than
-- its own: the DDL event triggers, the hierarchy walks, the pooled quotas, the exports (once it is an admin). That
-- SQL names every type, operator and function by schema, so no planted object runs: no WARNING "SHADOW RAN" below,
-- and the role is still not a superuser at the end (the shadow makes it one whenever a superuser runs it). Issue
-- #15, finding 1.
\set VERBOSITY terse
SELECT current_user AS superuser \gset
CREATE ROLE regress_hostile LOGIN;
GRANT tenancy_app TO regress_hostile;
CREATE SCHEMA hostile AUTHORIZATION regress_hostile;
SELECT id AS parent FROM tenancy.create_tenant('Hostile Parent', 'hostile-parent', 'team') \gset
SELECT id AS child FROM tenancy.create_tenant('Hostile Child', 'hostile-child', 'team', parent_tenant_id => :'parent') \gset
SELECT id AS grandchild FROM tenancy.create_tenant('Hostile Grandchild', 'hostile-grandchild', 'team',
  parent_tenant_id => :'child') \gset
-- an isolated table of the role's own: something to inherit from, and a row in tenancy.isolation_config
CREATE TABLE hostile.isolated (tenant_id uuid NOT NULL, body text);
ALTER TABLE hostile.isolated OWNER TO regress_hostile;
SELECT tenancy.enable_isolation('hostile.isolated');

SET ROLE regress_hostile;
-- the shadow: reports who runs it and, run by a superuser, makes regress_hostile one
CREATE FUNCTION hostile.shadow() RETURNS boolean LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE WARNING 'SHADOW RAN as %', current_user;
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
    EXECUTE 'ALTER ROLE regress_hostile SUPERUSER';
  END IF;
  RETURN true;
END $$;

-- (a) pg_temp.name and pg_temp.text: domains over the real types whose CHECK runs the shadow, so a cast to an
-- unqualified "name" or "text" runs it. The event trigger casts to name for tenancy.auto_isolate and to text for
-- the column of an isolated ancestor; isolating the new table reads its state with both casts.
CREATE DOMAIN pg_temp.name AS pg_catalog.name CHECK (hostile.shadow());
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (hostile.shadow());
RESET ROLE;
SET tenancy.auto_isolate = 'tenant_id';
SET ROLE regress_hostile;
CREATE TEMP TABLE hostile_auto (tenant_id uuid, body pg_catalog.text);
CREATE TEMP TABLE hostile_kid () INHERITS (hostile.isolated);
RESET ROLE;
RESET tenancy.auto_isolate;
-- both were isolated all the same
SELECT relid::pg_catalog.regclass::pg_catalog.text AS isolated, tenant_column FROM tenancy.isolation_config
 WHERE relid::pg_catalog.oid IN ('hostile_auto'::pg_catalog.regclass, 'hostile_kid'::pg_catalog.regclass)
 ORDER BY 1;
SET ROLE regress_hostile;
DROP TABLE hostile_auto, hostile_kid;

-- (b) operators of hostile first in the search_path: = and <> on "char", text and oid, the types the event
-- triggers compare (relkind, schema and command names, dropped objects).
CREATE FUNCTION hostile.char_eq("char", "char") RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  AS $$ BEGIN PERFORM hostile.shadow(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE FUNCTION hostile.text_eq(pg_catalog.text, pg_catalog.text) RETURNS boolean LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$ BEGIN PERFORM hostile.shadow(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE FUNCTION hostile.text_ne(pg_catalog.text, pg_catalog.text) RETURNS boolean LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  AS $$ BEGIN PERFORM hostile.shadow(); RETURN $1 OPERATOR(pg_catalog.<>) $2; END $$;
CREATE FUNCTION hostile.oid_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  AS $$ BEGIN PERFORM hostile.shadow(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR hostile.= (LEFTARG = "char", RIGHTARG = "char", FUNCTION = hostile.char_eq);
CREATE OPERATOR hostile.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = hostile.text_eq);
CREATE OPERATOR hostile.<> (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = hostile.text_ne);
CREATE OPERATOR hostile.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = hostile.oid_eq);
SET search_path = hostile, pg_catalog;
-- ddl_command_end, then sql_drop (tenancy.isolation_config is not empty: the dropped list is compared with it)
CREATE TABLE hostile.plain (id int);
CREATE TABLE hostile.kid () INHERITS (hostile.isolated);
DROP TABLE hostile.plain, hostile.kid;
RESET search_path;
RESET ROLE;

-- (c) + and < on integer in the role's schema, first in its search_path, in a session of its own (\c: pg_temp
-- and the session user are the role's). The walks count levels with them.
\c - regress_hostile
CREATE FUNCTION hostile.int4_pl(int4, int4) RETURNS int4 LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  AS $$ BEGIN PERFORM hostile.shadow(); RETURN $1 OPERATOR(pg_catalog.+) $2; END $$;
CREATE FUNCTION hostile.int4_lt(int4, int4) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  AS $$ BEGIN PERFORM hostile.shadow(); RETURN $1 OPERATOR(pg_catalog.<) $2; END $$;
CREATE OPERATOR hostile.+ (LEFTARG = int4, RIGHTARG = int4, FUNCTION = hostile.int4_pl);
CREATE OPERATOR hostile.< (LEFTARG = int4, RIGHTARG = int4, FUNCTION = hostile.int4_lt);
SET search_path = hostile, pg_catalog;
BEGIN;
SELECT tenancy.set_tenant(:'parent');
SELECT pg_catalog.array_agg(d) OPERATOR(pg_catalog.=) ARRAY[:'child', :'grandchild']::pg_catalog.uuid[] AS descendants
  FROM tenancy.tenant_descendants(:'parent') d;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'grandchild');
SELECT pg_catalog.array_agg(a) OPERATOR(pg_catalog.=) ARRAY[:'child', :'parent']::pg_catalog.uuid[] AS ancestors
  FROM tenancy.tenant_ancestors(:'grandchild') a;
-- consume_pooled and release_pooled walk to the ancestors (the grandchild's limit and both of theirs)
SELECT tenancy.consume_pooled(:'grandchild', 'storage_mb', 2);
SELECT tenancy.release_pooled(:'grandchild', 'storage_mb', 1);
COMMIT;
RESET search_path;
\c - :superuser

-- (d) the role as an admin (tenancy_admin: not the owner, not a superuser) with its pg_temp.text again:
-- export_tenant and export_manifest build the document as the extension owner, casting to text
GRANT tenancy_admin TO regress_hostile;
\c - regress_hostile
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (hostile.shadow());
SELECT tenancy.export_tenant(:'child') IS NOT NULL AS exported;
SELECT tenancy.export_manifest(:'child') IS NOT NULL AS manifest;
\c - :superuser

-- the role is still not a superuser
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_hostile';

DROP SCHEMA hostile CASCADE;
DROP ROLE regress_hostile;
DELETE FROM tenancy.tenants WHERE slug = 'hostile-grandchild';
DELETE FROM tenancy.tenants WHERE slug = 'hostile-child';
DELETE FROM tenancy.tenants WHERE slug = 'hostile-parent';
