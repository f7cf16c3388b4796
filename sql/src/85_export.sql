-- sql/src/85_export.sql
-- Tenant export/import: one self-describing document (manifest with per-table SHA-256), or per-table COPY streams.

-- SHA-256 (hex) of values in aggregation order, each followed by a newline; the checksum of an export table is
-- this aggregate over its rows' COPY text lines (format 2; format 1: each row's jsonb text) in document order.
CREATE FUNCTION tenancy._sha256_agg_transfn(internal, text) RETURNS internal
LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_sha256_agg_transfn';
CREATE FUNCTION tenancy._sha256_agg_finalfn(internal) RETURNS text
LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_sha256_agg_finalfn';
CREATE AGGREGATE tenancy._sha256_agg(text) (
  SFUNC = tenancy._sha256_agg_transfn, STYPE = internal, FINALFUNC = tenancy._sha256_agg_finalfn,
  FINALFUNC_EXTRA = false, FINALFUNC_MODIFY = READ_ONLY
);
COMMENT ON FUNCTION tenancy._sha256_agg_transfn(internal, text) IS 'internal: transition of tenancy._sha256_agg';
COMMENT ON FUNCTION tenancy._sha256_agg_finalfn(internal) IS 'internal: final function of tenancy._sha256_agg';
COMMENT ON AGGREGATE tenancy._sha256_agg(text) IS
  'internal: hex SHA-256 of the values in order, each followed by a newline (export checksums)';

-- The values of a COPY text line as export_tenant writes it (the inverse of _copy_line; other escapes refused).
CREATE FUNCTION tenancy._copy_fields(text) RETURNS text[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_copy_fields';
COMMENT ON FUNCTION tenancy._copy_fields(text) IS 'internal: the values of one row of a format-2 export document';

-- A row's COPY text line (values escaped as COPY's text format, tab-separated, NULL as \N; without the newline).
CREATE FUNCTION tenancy._copy_line(text[]) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_copy_line';
COMMENT ON FUNCTION tenancy._copy_line(text[]) IS
  'internal: the values as one COPY text-format line, the unit of format-2 export checksums';

-- Columns an import writes: not dropped, not generated, in column order.
CREATE FUNCTION tenancy._export_columns(tbl oid) RETURNS text[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
     AND a.attgenerated OPERATOR(pg_catalog.=) ''
$$;
COMMENT ON FUNCTION tenancy._export_columns(oid) IS 'internal: the stored, non-generated columns of a table';

-- The query reading one table's exported columns of the tenant's ($1) rows, in primary-key order (whole-row order
-- without one). Identifiers are quoted. The export runs it as the superuser (every tenant's rows, under every
-- table's policy), so a table that could bring code of its owner's into that query is refused: it must still be
-- a plain or partitioned table (not one turned into a view) whose tenant column is exactly uuid (a type of the
-- owner's could add an implicit cast function to the comparison).
CREATE FUNCTION tenancy._export_select(tbl oid, tenant_column name) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  order_by pg_catalog.text;
  only_kw pg_catalog.text := CASE WHEN (SELECT k.relkind FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) tbl)
                            OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY ' END;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class k JOIN pg_catalog.pg_attribute a
                     ON a.attrelid OPERATOR(pg_catalog.=) k.oid AND a.attname OPERATOR(pg_catalog.=) tenant_column
                    AND NOT a.attisdropped
                  WHERE k.oid OPERATOR(pg_catalog.=) tbl
                    AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
                    AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype) THEN
    RAISE EXCEPTION 'cannot export %: it is no longer a table with a uuid column "%"', tbl::pg_catalog.regclass,
                    tenant_column
      USING ERRCODE = '42804',
            HINT = 'Restore the table and its tenant column, or disable isolation of it with tenancy.disable_isolation().';
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.format('t.%I', a.attname), ', ' ORDER BY k.n) INTO order_by
    FROM pg_catalog.pg_constraint c, pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, n),
         pg_catalog.pg_attribute a
   WHERE c.conrelid OPERATOR(pg_catalog.=) tbl AND c.contype OPERATOR(pg_catalog.=) 'p'
     AND a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.=) k.attnum;
  RETURN pg_catalog.format('SELECT %s FROM %s%s t WHERE t.%I OPERATOR(pg_catalog.=) $1 ORDER BY %s',
                (SELECT pg_catalog.string_agg(pg_catalog.format('t.%I', c.name), ', ' ORDER BY c.i)
                   FROM pg_catalog.unnest(tenancy._export_columns(tbl)) WITH ORDINALITY c(name, i)),
                only_kw, tbl::pg_catalog.regclass, tenant_column, coalesce(order_by, 't::pg_catalog.text'));
END
$$;
COMMENT ON FUNCTION tenancy._export_select(oid, name) IS 'internal: the query reading a table''s rows of one tenant';

-- What an export holds, in the order an import restores it (parents before children):
--   registry: the tenant row, users, quota overrides, usage history and wrapped data keys (the last two when the
--             quota and crypto parts are installed);
--   isolated: every isolated table that is not a partition (a partitioned root covers its partitions; an
--             inheritance parent is read with ONLY and each child on its own), ordered by their foreign keys;
--   audit:    the audit events about the tenant (re-appended to the target's own chain on import).
-- Rows come in primary-key order (whole-row order without one), so exporting the same data twice gives the same
-- checksums. select_sql takes the tenant id as $1 and yields the exported columns of each row.
CREATE FUNCTION tenancy._export_plan()
RETURNS TABLE (ord integer, table_name regclass, qualified_name text, kind text, tenant_column name, columns text[], select_sql text)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE registry AS (
    SELECT pg_catalog.to_regclass(v.name)::pg_catalog.oid AS relid, v.col::pg_catalog.name AS col, v.sortkey
      FROM (VALUES ('tenancy.tenants', 'id', 1), ('tenancy.users', 'tenant_id', 2),
                   ('tenancy.quota_overrides', 'tenant_id', 3), ('tenancy.usage_history', 'tenant_id', 4),
                   ('tenancy.tenant_keys', 'tenant_id', 5)) v(name, col, sortkey)
     WHERE pg_catalog.to_regclass(v.name) IS NOT NULL),
  isolated AS (
    SELECT c.relid::pg_catalog.oid AS relid, c.tenant_column AS col,
           ARRAY(SELECT f.confrelid FROM pg_catalog.pg_constraint f
                  WHERE f.conrelid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid AND f.contype OPERATOR(pg_catalog.=) 'f'
                    AND f.confrelid OPERATOR(pg_catalog.<>) c.relid::pg_catalog.oid) AS refs
      FROM tenancy.isolation_config c
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid
     WHERE NOT k.relispartition AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])),
  -- Depth of each isolated table = its longest chain of references to other isolated tables; restoring by depth
  -- puts every referenced table first. The path check stops at a foreign-key cycle (its import then fails).
  chain (relid, depth, path) AS (
    SELECT i.relid, 0, ARRAY[i.relid] FROM isolated i
    UNION ALL
    SELECT i.relid, ch.depth OPERATOR(pg_catalog.+) 1, ch.path OPERATOR(pg_catalog.||) i.relid
      FROM chain ch JOIN isolated i ON ch.relid OPERATOR(pg_catalog.=) ANY (i.refs)
     WHERE NOT i.relid OPERATOR(pg_catalog.=) ANY (ch.path)),
  ordered AS (
    SELECT r.relid, 'registry' AS kind, r.col, 0 AS grp, r.sortkey AS depth FROM registry r
    UNION ALL
    SELECT i.relid, 'isolated', i.col, 1, (SELECT pg_catalog.max(ch.depth) FROM chain ch
                                            WHERE ch.relid OPERATOR(pg_catalog.=) i.relid)
      FROM isolated i)
  SELECT (pg_catalog.row_number() OVER (ORDER BY o.grp, o.depth, o.relid::pg_catalog.regclass::pg_catalog.text))::pg_catalog.int4,
         o.relid::pg_catalog.regclass, pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.relname), o.kind,
         o.col, tenancy._export_columns(o.relid), tenancy._export_select(o.relid, o.col)
    FROM ordered o
    JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) o.relid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
  UNION ALL
  SELECT (SELECT pg_catalog.count(*) FROM ordered)::pg_catalog.int4 OPERATOR(pg_catalog.+) 1, 'tenancy.audit_log'::pg_catalog.regclass, 'tenancy.audit_log',
         'audit',
         'tenant_id'::pg_catalog.name, tenancy._export_columns('tenancy.audit_log'::pg_catalog.regclass),
         -- Not the events of the exporting transaction itself (export_manifest's own event, say), so the
         -- manifest and the COPYs of one COPY-form export agree.
         (SELECT 'SELECT ' OPERATOR(pg_catalog.||) pg_catalog.string_agg(pg_catalog.format('t.%I', c.name), ', ' ORDER BY c.i)
            FROM pg_catalog.unnest(tenancy._export_columns('tenancy.audit_log'::pg_catalog.regclass)) WITH ORDINALITY c(name, i))
         OPERATOR(pg_catalog.||) ' FROM tenancy.audit_log t WHERE t.tenant_id OPERATOR(pg_catalog.=) $1'
         ' AND (pg_catalog.pg_current_xact_id_if_assigned() IS NULL OR t.xmin OPERATOR(pg_catalog.<>)'
         ' pg_catalog.xid(pg_catalog.pg_current_xact_id_if_assigned())) ORDER BY t.id'
  ORDER BY 1
$$;
COMMENT ON FUNCTION tenancy._export_plan() IS
  'internal: the tables of a tenant export in restore order, with the query that reads each one''s rows';

-- The manifest's fields other than its tables (extension/pg/export_document.cpp adds those); TN001 for an unknown
-- tenant. Format 2: each row is its COPY text line (values rendered under fixed settings, so the bytes do not
-- depend on the session), and a table's checksum covers exactly those lines, each with its newline: what COPY ...
-- TO STDOUT of the table's export_table sends.
CREATE FUNCTION tenancy._export_head(tenant uuid) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object(
    'format_version', 2, 'tenant_id', t.id, 'slug', t.slug, 'data_residency', t.data_residency,
    'source_region', NULLIF(pg_catalog.current_setting('tenancy.region', true), ''),
    'extension_version', (SELECT e.extversion FROM pg_catalog.pg_extension e
                           WHERE e.extname OPERATOR(pg_catalog.=) 'tenancy'),
    'exported_at', tenancy._rfc3339(pg_catalog.statement_timestamp()),
    'encoding', pg_catalog.getdatabaseencoding(),
    'text_settings', '{"DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "TimeZone": "UTC",
                       "extra_float_digits": 1, "bytea_output": "hex", "lc_monetary": "C"}'::pg_catalog.jsonb,
    'checksum_algorithm', 'sha256 of each row''s COPY text line (values escaped as COPY text format, tab-separated,'
                          ' newline-terminated), in document order')
    FROM tenancy.get_tenant(tenant) t
$$;
COMMENT ON FUNCTION tenancy._export_head(uuid) IS 'internal: the manifest fields of a tenant export besides its tables';

CREATE FUNCTION tenancy._export_summary(manifest jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object(
    'source_tenant_id', manifest OPERATOR(pg_catalog.->) 'tenant_id', 'slug', manifest OPERATOR(pg_catalog.->) 'slug',
    'extension_version', manifest OPERATOR(pg_catalog.->) 'extension_version',
    'rows', (SELECT coalesce(pg_catalog.jsonb_object_agg(e OPERATOR(pg_catalog.->>) 'table', e OPERATOR(pg_catalog.->) 'rows'), '{}')
               FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') e))
$$;
COMMENT ON FUNCTION tenancy._export_summary(jsonb) IS 'internal: what the audit event of an export or import records';

-- The shape of an export manifest (format 1 or 2), checked before anything else is read.
CREATE FUNCTION tenancy._import_check_manifest(manifest jsonb, version integer) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e pg_catalog.jsonb;
BEGIN
  IF pg_catalog.jsonb_typeof(manifest) IS DISTINCT FROM 'object'
     OR pg_catalog.jsonb_typeof(manifest OPERATOR(pg_catalog.->) 'tables') IS DISTINCT FROM 'array'
     OR coalesce(manifest OPERATOR(pg_catalog.->>) 'tenant_id', '') !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    PERFORM tenancy._invalid_input('invalid export manifest',
      'A manifest is an object with the tenant_id and the tables of the export.',
      'Import a document written by tenancy.export_tenant() or tenancy.export_manifest().');
  END IF;
  -- Format 1 manifests carry no version of their own (the document does); a format 2 manifest says so.
  IF coalesce(manifest OPERATOR(pg_catalog.->>) 'format_version', '1') OPERATOR(pg_catalog.<>) version::pg_catalog.text THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('export manifest of format version %s does not match format version %s',
                                          coalesce(manifest OPERATOR(pg_catalog.->>) 'format_version', '1'), version));
  END IF;
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') x LOOP
    IF pg_catalog.jsonb_typeof(e) IS DISTINCT FROM 'object'
       OR pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'table') IS DISTINCT FROM 'string'
       OR NOT coalesce(e OPERATOR(pg_catalog.->>) 'kind', '') OPERATOR(pg_catalog.=) ANY (ARRAY['registry', 'isolated', 'audit'])
       OR pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'tenant_column') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'columns') IS DISTINCT FROM 'array'
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(e OPERATOR(pg_catalog.->) 'columns') c
                   WHERE pg_catalog.jsonb_typeof(c) OPERATOR(pg_catalog.<>) 'string')
       OR pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'rows') IS DISTINCT FROM 'number'
       OR pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'sha256') IS DISTINCT FROM 'string'
       OR NOT (e OPERATOR(pg_catalog.->>) 'tenant_column') OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e OPERATOR(pg_catalog.->) 'columns'))) THEN
      PERFORM tenancy._invalid_input('invalid export manifest',
        pg_catalog.format('Table entry %s lacks table, kind, tenant_column, columns, rows or sha256.', e));
    END IF;
  END LOOP;
  IF (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') x
       WHERE x.value OPERATOR(pg_catalog.->>) 'table' OPERATOR(pg_catalog.=) 'tenancy.tenants') OPERATOR(pg_catalog.<>) 1 THEN
    PERFORM tenancy._invalid_input('invalid export manifest', 'The manifest must list tenancy.tenants once.');
  END IF;
  IF (SELECT pg_catalog.count(DISTINCT x.value OPERATOR(pg_catalog.->>) 'table') FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') x)
     OPERATOR(pg_catalog.<>) pg_catalog.jsonb_array_length(manifest OPERATOR(pg_catalog.->) 'tables') THEN
    PERFORM tenancy._invalid_input('invalid export manifest', 'The manifest lists a table twice.');
  END IF;
  -- The kind and tenant column of each table are ours to decide, not the document's: a forged manifest naming
  -- another column as the tenant column (users' email holding the tenant id, say) would otherwise pass the owner
  -- check with rows of another tenant.
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') x LOOP
    IF (e OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'registry' AND NOT (e OPERATOR(pg_catalog.->>) 'table', e OPERATOR(pg_catalog.->>) 'tenant_column') IN (
          ('tenancy.tenants', 'id'), ('tenancy.users', 'tenant_id'), ('tenancy.quota_overrides', 'tenant_id'),
          ('tenancy.usage_history', 'tenant_id'), ('tenancy.tenant_keys', 'tenant_id')))
       OR (e OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'audit'
           AND (e OPERATOR(pg_catalog.->>) 'table', e OPERATOR(pg_catalog.->>) 'tenant_column') IS DISTINCT FROM ('tenancy.audit_log', 'tenant_id'))
       OR (e OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'isolated' AND pg_catalog.to_regclass(e OPERATOR(pg_catalog.->>) 'table') IS NOT NULL
           AND (SELECT n.nspname FROM pg_catalog.pg_class k JOIN pg_catalog.pg_namespace n
                    ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
                 WHERE k.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(e OPERATOR(pg_catalog.->>) 'table')) OPERATOR(pg_catalog.=) 'tenancy')
    THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" cannot be imported as %s data keyed by "%s"', e OPERATOR(pg_catalog.->>) 'table',
                                            e OPERATOR(pg_catalog.->>) 'kind', e OPERATOR(pg_catalog.->>) 'tenant_column'),
        'The manifest does not match what tenancy exports.');
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._import_check_manifest(jsonb, integer) IS 'internal: refuses a malformed export manifest';

-- The import, all or nothing, of rows staged either in one jsonb table (format 1: staging (table_name text, row
-- jsonb, ord bigint), each row an object) or in one text table per manifest entry (format 2: staging NULL, tables
-- pg_temp.<prefix><n> (ord bigint, c1 text, c2 text, ...) for the n-th entry, each column the text of the export).
-- Everything is checked before the first row is written: the manifest's shape; each table's row count and SHA-256
-- over the staged rows in order; that every row belongs to the exported tenant (a forged document cannot write into
-- another tenant); that neither the tenant nor its slug exists here (23505); that each table exists here, is
-- isolated on the same column and has every exported column; and that no unique key the import keeps is held here
-- already (23505 with a hint). With new_id (a copy), the tenant id, every single-column uuid primary key and every
-- single-column unique key drawn from a sequence (serial, identity) get fresh values; uuid columns holding an old
-- id, and foreign keys referencing a renumbered key, follow; a taken slug gets the new id's first 8 characters.
-- Afterwards every sequence behind an imported integer key is moved past the largest value.
-- Values are read back under the settings they were written with (text_settings of the manifest), whatever the
-- session says.
CREATE FUNCTION tenancy._import_staged(manifest jsonb, staging regclass, new_id uuid, prefix text) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, YMD'
  SET IntervalStyle = 'postgres' SET lc_monetary = 'C' AS $$
DECLARE
  version constant integer := CASE WHEN staging IS NULL THEN 2 ELSE 1 END;
  src pg_catalog.uuid;
  target pg_catalog.uuid;
  remap pg_catalog.bool;
  e pg_catalog.jsonb;
  i pg_catalog.int8;
  tbl pg_catalog.regclass;
  tc pg_catalog.text;
  cols pg_catalog.text[];
  c pg_catalog.text;
  j pg_catalog.int4;
  n pg_catalog.int8;
  checksum pg_catalog.text;
  foreign_rows pg_catalog.int8;
  v_slug pg_catalog.text;
  new_slug pg_catalog.text;
  from_sql pg_catalog.text;
  exprs pg_catalog.text[];
  con record;
  ref record;
  seq pg_catalog.text;
  stmt pg_catalog.text;
  owner pg_catalog.regrole;
  entry_copy pg_catalog.regclass;
BEGIN
  PERFORM tenancy._import_check_manifest(manifest, version);
  src := (manifest OPERATOR(pg_catalog.->>) 'tenant_id')::pg_catalog.uuid;
  target := coalesce(new_id, src);
  remap := target OPERATOR(pg_catalog.<>) src;

  -- The work tables below live in the session's temporary schema, which the caller writes too, under fixed names:
  -- each is created here (never IF NOT EXISTS), so it is this role's own, without a trigger, rule, default or index
  -- expression of the caller's that would run with this role's rights. A relation or type of one of these names
  -- made beforehand is refused rather than reused.
  SELECT y.typname INTO c FROM pg_catalog.pg_type y
   WHERE y.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
     AND y.typname OPERATOR(pg_catalog.=) ANY (ARRAY['tenancy_import_entries', 'tenancy_import_columns',
                                                     'tenancy_import_id_map', 'tenancy_import_key_map']::pg_catalog.name[])
   ORDER BY y.typname LIMIT 1;
  IF c IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'duplicate_table',
      MESSAGE = pg_catalog.format('temporary table "%s" exists already', c),
      DETAIL = 'An import creates its own work tables of this name in the session''s temporary schema.',
      HINT = pg_catalog.format('Drop pg_temp.%I before importing.', c);
  END IF;

  -- Where each entry's rows are: "x" in from_sql, with x.ord; _import_text gives a column's text, _import_typed
  -- its value as the target column's type.
  CREATE TEMP TABLE tenancy_import_entries (i pg_catalog.int8 PRIMARY KEY, name pg_catalog.text,
    kind pg_catalog.text, tc pg_catalog.text, cols pg_catalog.text[], rows pg_catalog.int8, sha256 pg_catalog.text,
    tbl pg_catalog.regclass, from_sql pg_catalog.text) ON COMMIT DROP;
  INSERT INTO pg_temp.tenancy_import_entries
  SELECT x.i, x.v OPERATOR(pg_catalog.->>) 'table', x.v OPERATOR(pg_catalog.->>) 'kind', x.v OPERATOR(pg_catalog.->>) 'tenant_column',
         ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.v OPERATOR(pg_catalog.->) 'columns')), (x.v OPERATOR(pg_catalog.->>) 'rows')::pg_catalog.int8,
         x.v OPERATOR(pg_catalog.->>) 'sha256', pg_catalog.to_regclass(x.v OPERATOR(pg_catalog.->>) 'table'), NULL
    FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') WITH ORDINALITY x(v, i);
  IF version OPERATOR(pg_catalog.=) 1 THEN
    EXECUTE pg_catalog.format('SELECT s.table_name FROM %s s WHERE NOT s.table_name OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1',
                   staging)
      INTO c USING ARRAY(SELECT x.name FROM pg_temp.tenancy_import_entries x);
    IF c IS NOT NULL THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('rows of table "%s" are not listed in the export manifest', c));
    END IF;
    UPDATE pg_temp.tenancy_import_entries x SET from_sql =
      pg_catalog.format('(SELECT s.ord, s.row FROM %s s WHERE s.table_name OPERATOR(pg_catalog.=) %L) x', staging, x.name);
  ELSE
    FOR i IN SELECT x.i FROM pg_temp.tenancy_import_entries x LOOP
      IF pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', prefix OPERATOR(pg_catalog.||) i)) IS NULL THEN
        PERFORM tenancy._invalid_input(pg_catalog.format('staging table "%s" does not exist', prefix OPERATOR(pg_catalog.||) i), NULL,
          'Run tenancy.import_tables(manifest) and load each table''s COPY file in the same transaction first.');
      END IF;
    END LOOP;
    UPDATE pg_temp.tenancy_import_entries x SET from_sql = pg_catalog.format('pg_temp.%I x', prefix OPERATOR(pg_catalog.||) x.i);
  END IF;

  -- Integrity: counts and checksums over the rows in order, and the owner of every row.
  FOR e IN SELECT pg_catalog.to_jsonb(x) FROM pg_temp.tenancy_import_entries x ORDER BY x.i LOOP
    cols := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e OPERATOR(pg_catalog.->) 'cols'));
    IF version OPERATOR(pg_catalog.=) 1 THEN
      EXECUTE pg_catalog.format('SELECT pg_catalog.count(*), tenancy._sha256_agg(x.row::text ORDER BY x.ord),'
                     ' pg_catalog.count(*) FILTER (WHERE x.row ->> %L IS DISTINCT FROM %L) FROM %s',
                     e OPERATOR(pg_catalog.->>) 'tc', src, e OPERATOR(pg_catalog.->>) 'from_sql')
        INTO n, checksum, foreign_rows;
    ELSE
      EXECUTE pg_catalog.format('SELECT pg_catalog.count(*), tenancy._sha256_agg(tenancy._copy_line(ARRAY[%s]) ORDER BY x.ord),'
                     ' pg_catalog.count(*) FILTER (WHERE x.%I IS DISTINCT FROM %L) FROM %s',
                     (SELECT pg_catalog.string_agg(pg_catalog.format('x.%I', 'c' OPERATOR(pg_catalog.||) k), ', ' ORDER BY k)
                        FROM pg_catalog.generate_series(1, pg_catalog.cardinality(cols)) k),
                     'c' OPERATOR(pg_catalog.||) pg_catalog.array_position(cols, e OPERATOR(pg_catalog.->>) 'tc'), src, e OPERATOR(pg_catalog.->>) 'from_sql')
        INTO n, checksum, foreign_rows;
    END IF;
    IF n OPERATOR(pg_catalog.<>) (e OPERATOR(pg_catalog.->>) 'rows')::pg_catalog.int8 OR checksum OPERATOR(pg_catalog.<>) (e OPERATOR(pg_catalog.->>) 'sha256') THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('checksum of table "%s" does not match the export manifest', e OPERATOR(pg_catalog.->>) 'name'),
        pg_catalog.format('The manifest promises %s rows with SHA-256 %s; the export holds %s rows with SHA-256 %s.',
               e OPERATOR(pg_catalog.->>) 'rows', e OPERATOR(pg_catalog.->>) 'sha256', n, checksum),
        'The export was altered or truncated after it was written; export the tenant again.');
    END IF;
    IF foreign_rows OPERATOR(pg_catalog.>) 0 THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" of the export holds rows of another tenant', e OPERATOR(pg_catalog.->>) 'name'),
        pg_catalog.format('%s rows do not belong to tenant %s.', foreign_rows, src));
    END IF;
  END LOOP;
  SELECT x.* INTO con FROM pg_temp.tenancy_import_entries x WHERE x.name OPERATOR(pg_catalog.=) 'tenancy.tenants';
  EXECUTE pg_catalog.format('SELECT %s FROM %s LIMIT 1', CASE version WHEN 1 THEN 'x.row ->> ''slug'''
                   ELSE pg_catalog.format('x.%I', 'c' OPERATOR(pg_catalog.||) pg_catalog.array_position(con.cols, 'slug')) END, con.from_sql)
    INTO v_slug;
  IF v_slug IS NULL THEN
    PERFORM tenancy._invalid_input('the export holds no tenant row');
  END IF;

  -- Conflicts: the same tenant or slug here already.
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) target) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = pg_catalog.format('tenant "%s" already exists', target),
      HINT = 'Import with new_id => gen_random_uuid() for a copy, or erase the tenant first.';
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.slug OPERATOR(pg_catalog.=) v_slug) THEN
    -- A copy beside its original gets a slug of its own: the old one followed by the start of its new id.
    new_slug := pg_catalog.left(v_slug, 54) OPERATOR(pg_catalog.||) '-' OPERATOR(pg_catalog.||) pg_catalog.left(target::pg_catalog.text, 8);
    IF NOT remap OR EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.slug OPERATOR(pg_catalog.=) new_slug) THEN
      RAISE EXCEPTION USING ERRCODE = 'unique_violation',
        MESSAGE = pg_catalog.format('tenant with slug "%s" already exists', CASE WHEN remap THEN new_slug ELSE v_slug END),
        CONSTRAINT = 'tenants_slug_key',
        HINT = 'Erase the tenant with this slug first, or import a copy under a new id (new_id).';
    END IF;
  END IF;

  -- The tables here: present, isolated alike, with every exported column, and read below (sequence catch-up)
  -- with this function's rights, so planning a read of them must run no code of their owners'.
  FOR con IN SELECT x.* FROM pg_temp.tenancy_import_entries x WHERE x.kind OPERATOR(pg_catalog.<>) 'audit' ORDER BY x.i LOOP
    IF con.tbl IS NULL THEN
      IF con.rows OPERATOR(pg_catalog.>) 0 THEN
        PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" of the export does not exist in this database', con.name),
          NULL, 'Create the application''s tables (and isolate them) before importing a tenant.');
      END IF;
      CONTINUE;
    END IF;
    PERFORM tenancy._require_plain_read(con.tbl);
    IF con.kind OPERATOR(pg_catalog.=) 'isolated' AND NOT EXISTS (
         SELECT 1 FROM tenancy.isolation_config ic
          WHERE ic.relid OPERATOR(pg_catalog.=) con.tbl AND ic.tenant_column::pg_catalog.text OPERATOR(pg_catalog.=) con.tc) THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" is not isolated on column "%s" in this database', con.tbl,
                                            con.tc),
        'Imported rows are only written into tables that keep them apart from other tenants.',
        pg_catalog.format('Run SELECT tenancy.enable_isolation(%L, %L) first.', con.tbl::pg_catalog.text, con.tc));
    END IF;
    SELECT c2 INTO c FROM pg_catalog.unnest(con.cols) c2 WHERE NOT c2 OPERATOR(pg_catalog.=) ANY (tenancy._export_columns(con.tbl)) LIMIT 1;
    IF c IS NOT NULL THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('column "%s" of table "%s" does not exist in this database', c, con.tbl),
        'Every exported column must have a stored column of the same name here.');
    END IF;
  END LOOP;
  -- Wrapped data keys are bound to their tenant id (and ciphertexts to it): a copy under a new id cannot use them and
  -- gets a fresh key from the crypto part's insert trigger instead (encryption_key_id left NULL).
  IF remap THEN
    DELETE FROM pg_temp.tenancy_import_entries x WHERE x.tbl OPERATOR(pg_catalog.=) pg_catalog.to_regclass('tenancy.tenant_keys');
  END IF;
  DELETE FROM pg_temp.tenancy_import_entries x WHERE x.tbl IS NULL AND x.kind OPERATOR(pg_catalog.<>) 'audit';

  -- Each imported column: its text and typed value expressions, and what it becomes in this import.
  CREATE TEMP TABLE tenancy_import_columns (i pg_catalog.int8, tbl pg_catalog.regclass, name pg_catalog.text,
    pos pg_catalog.int4, type pg_catalog.regtype, text_expr pg_catalog.text, typed_expr pg_catalog.text,
    renumber pg_catalog.text, ref_tbl pg_catalog.regclass, ref_name pg_catalog.text, PRIMARY KEY (i, name))
    ON COMMIT DROP;
  INSERT INTO pg_temp.tenancy_import_columns
  SELECT x.i, x.tbl, c2.name, c2.pos::pg_catalog.int4, a.atttypid::pg_catalog.regtype,
         CASE version WHEN 1 THEN pg_catalog.format('(x.row ->> %L)', c2.name) ELSE pg_catalog.format('x.%I', 'c' OPERATOR(pg_catalog.||) c2.pos) END,
         CASE version WHEN 1 THEN pg_catalog.format('r.%I', c2.name)
                      ELSE pg_catalog.format('(x.%I)::%s', 'c' OPERATOR(pg_catalog.||) c2.pos, a.atttypid::pg_catalog.regtype) END,
         NULL, NULL, NULL
    FROM pg_temp.tenancy_import_entries x, pg_catalog.unnest(x.cols) WITH ORDINALITY c2(name, pos),
         pg_catalog.pg_attribute a
   WHERE x.kind OPERATOR(pg_catalog.<>) 'audit' AND a.attrelid OPERATOR(pg_catalog.=) x.tbl
     AND a.attname::pg_catalog.text OPERATOR(pg_catalog.=) c2.name;
  IF remap THEN
    -- Renumbered keys: single-column primary (uuid, or drawn from a sequence) and unique (drawn from a sequence)
    -- keys other than the tenant column.
    UPDATE pg_temp.tenancy_import_columns m SET renumber = CASE
             WHEN m.type OPERATOR(pg_catalog.=) 'uuid'::pg_catalog.regtype AND k.contype OPERATOR(pg_catalog.=) 'p' THEN 'uuid'
             ELSE 'sequence' END
      FROM pg_temp.tenancy_import_entries x, pg_catalog.pg_constraint k, pg_catalog.pg_attribute a
     WHERE x.i OPERATOR(pg_catalog.=) m.i AND m.name OPERATOR(pg_catalog.<>) x.tc
       AND k.conrelid OPERATOR(pg_catalog.=) m.tbl AND k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::"char"[])
       AND pg_catalog.cardinality(k.conkey) OPERATOR(pg_catalog.=) 1
       AND a.attrelid OPERATOR(pg_catalog.=) m.tbl AND a.attnum OPERATOR(pg_catalog.=) k.conkey[1]
       AND a.attname::pg_catalog.text OPERATOR(pg_catalog.=) m.name
       AND ((m.type OPERATOR(pg_catalog.=) 'uuid'::pg_catalog.regtype AND k.contype OPERATOR(pg_catalog.=) 'p')
            OR (m.type OPERATOR(pg_catalog.=) ANY (ARRAY['smallint', 'integer', 'bigint']::pg_catalog.regtype[])
                AND pg_catalog.pg_get_serial_sequence(m.tbl::pg_catalog.text, m.name) IS NOT NULL));
    -- Foreign keys referencing a renumbered key follow it (single- or multi-column, by position).
    UPDATE pg_temp.tenancy_import_columns m SET ref_tbl = r.tbl, ref_name = r.name
      FROM pg_catalog.pg_constraint f,
           ROWS FROM (pg_catalog.unnest(f.conkey), pg_catalog.unnest(f.confkey)) u(k, fk),
           pg_catalog.pg_attribute a, pg_catalog.pg_attribute ra, pg_temp.tenancy_import_columns r
     WHERE f.conrelid OPERATOR(pg_catalog.=) m.tbl AND f.contype OPERATOR(pg_catalog.=) 'f'
       AND a.attrelid OPERATOR(pg_catalog.=) m.tbl AND a.attnum OPERATOR(pg_catalog.=) u.k
       AND a.attname::pg_catalog.text OPERATOR(pg_catalog.=) m.name
       AND ra.attrelid OPERATOR(pg_catalog.=) f.confrelid AND ra.attnum OPERATOR(pg_catalog.=) u.fk
       AND r.tbl OPERATOR(pg_catalog.=) f.confrelid AND r.name OPERATOR(pg_catalog.=) ra.attname::pg_catalog.text
       AND r.renumber OPERATOR(pg_catalog.=) 'sequence';

    -- New ids: the tenant, every uuid primary key (any uuid column holding one follows), and fresh values from
    -- each renumbered key's own sequence.
    CREATE TEMP TABLE tenancy_import_id_map (old pg_catalog.uuid PRIMARY KEY, new pg_catalog.uuid NOT NULL)
      ON COMMIT DROP;
    CREATE TEMP TABLE tenancy_import_key_map (tbl pg_catalog.regclass, name pg_catalog.text, old pg_catalog.text,
      new pg_catalog.text, PRIMARY KEY (tbl, name, old)) ON COMMIT DROP;
    INSERT INTO pg_temp.tenancy_import_id_map VALUES (src, target);
    FOR con IN SELECT m.*, x.from_sql FROM pg_temp.tenancy_import_columns m
                 JOIN pg_temp.tenancy_import_entries x ON x.i OPERATOR(pg_catalog.=) m.i
                WHERE m.renumber IS NOT NULL ORDER BY m.i, m.pos LOOP
      IF con.renumber OPERATOR(pg_catalog.=) 'uuid' THEN
        EXECUTE pg_catalog.format('INSERT INTO pg_temp.tenancy_import_id_map SELECT DISTINCT (%s)::uuid,'
                       ' pg_catalog.gen_random_uuid() FROM %s WHERE %s IS NOT NULL ON CONFLICT DO NOTHING',
                       con.text_expr, con.from_sql, con.text_expr);
      ELSE
        EXECUTE pg_catalog.format('INSERT INTO pg_temp.tenancy_import_key_map SELECT %L, %L, d.v,'
                       ' pg_catalog.nextval(%L::pg_catalog.regclass)::text'
                       ' FROM (SELECT %s AS v, pg_catalog.min(x.ord) AS first FROM %s WHERE %s IS NOT NULL'
                       ' GROUP BY 1 ORDER BY 2) d',
                       con.tbl, con.name, pg_catalog.pg_get_serial_sequence(con.tbl::pg_catalog.text, con.name),
                       con.text_expr, con.from_sql, con.text_expr);
      END IF;
    END LOOP;
  END IF;

  -- What each column becomes: the tenant id; a renumbered key or a reference to one through the key map; any
  -- other uuid of a copy through the id map; else its value.
  UPDATE pg_temp.tenancy_import_columns m SET typed_expr = CASE
      WHEN m.name OPERATOR(pg_catalog.=) x.tc THEN pg_catalog.format('%L::%s', target, m.type)
      WHEN m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::pg_catalog.regclass AND m.name OPERATOR(pg_catalog.=) 'parent_tenant_id'
        -- A parent that is not here (another cluster) is dropped: the tenant becomes a root.
        THEN pg_catalog.format('(SELECT p.id FROM tenancy.tenants p WHERE p.id OPERATOR(pg_catalog.=) %s)', m.typed_expr)
      WHEN remap AND m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::pg_catalog.regclass
           AND m.name OPERATOR(pg_catalog.=) 'encryption_key_id' THEN 'NULL::text'
      WHEN new_slug IS NOT NULL AND m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::pg_catalog.regclass
           AND m.name OPERATOR(pg_catalog.=) 'slug' THEN pg_catalog.format('%L::%s', new_slug, m.type)
      WHEN remap AND (m.renumber OPERATOR(pg_catalog.=) 'sequence' OR m.ref_tbl IS NOT NULL)
        THEN pg_catalog.format('coalesce((SELECT k.new FROM pg_temp.tenancy_import_key_map k WHERE k.tbl OPERATOR(pg_catalog.=) %L::pg_catalog.regclass'
                    ' AND k.name OPERATOR(pg_catalog.=) %L AND k.old OPERATOR(pg_catalog.=) %s)::%s, %s)',
                    coalesce(m.ref_tbl, m.tbl), coalesce(m.ref_name, m.name), m.text_expr, m.type, m.typed_expr)
      WHEN remap AND m.type OPERATOR(pg_catalog.=) 'uuid'::pg_catalog.regtype
        THEN pg_catalog.format('coalesce((SELECT d.new FROM pg_temp.tenancy_import_id_map d'
                    ' WHERE d.old OPERATOR(pg_catalog.=) %s), %s)', m.typed_expr, m.typed_expr)
      ELSE m.typed_expr END
    FROM pg_temp.tenancy_import_entries x WHERE x.i OPERATOR(pg_catalog.=) m.i;
  IF version OPERATOR(pg_catalog.=) 1 THEN
    UPDATE pg_temp.tenancy_import_entries x
       SET from_sql = x.from_sql OPERATOR(pg_catalog.||) pg_catalog.format(', LATERAL pg_catalog.jsonb_populate_record(NULL::%s, x.row) r', x.tbl)
     WHERE x.kind OPERATOR(pg_catalog.<>) 'audit';
  END IF;

  -- The rows, table by table in manifest order (parents first), each in export order.
  FOR con IN SELECT x.* FROM pg_temp.tenancy_import_entries x ORDER BY x.i LOOP
    IF con.kind OPERATOR(pg_catalog.=) 'audit' THEN
      -- History is re-appended to this cluster's own chain (its links cannot be copied): one event per exported
      -- event, carrying the original with its hashes as provenance.
      FOR e IN EXECUTE pg_catalog.format('SELECT %s FROM %s ORDER BY x.ord', CASE version WHEN 1 THEN 'x.row' ELSE pg_catalog.format(
                 'pg_catalog.jsonb_build_object(%s)', (SELECT pg_catalog.string_agg(pg_catalog.format('%L, (x.%I)::%s',
                   c2.name, 'c' OPERATOR(pg_catalog.||) c2.pos, a.atttypid::pg_catalog.regtype), ', ' ORDER BY c2.pos)
                   FROM pg_catalog.unnest(con.cols) WITH ORDINALITY c2(name, pos), pg_catalog.pg_attribute a
                  WHERE a.attrelid OPERATOR(pg_catalog.=) 'tenancy.audit_log'::pg_catalog.regclass
                    AND a.attname::pg_catalog.text OPERATOR(pg_catalog.=) c2.name)) END, con.from_sql) LOOP
        PERFORM tenancy._audit('audit_event_imported', target, NULL, e);
      END LOOP;
      CONTINUE;
    END IF;
    stmt := pg_catalog.format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ORDER BY x.ord', con.tbl,
                   (SELECT pg_catalog.string_agg(pg_catalog.format('%I', m.name), ', ' ORDER BY m.pos)
                      FROM pg_temp.tenancy_import_columns m WHERE m.i OPERATOR(pg_catalog.=) con.i),
                   (SELECT pg_catalog.string_agg(m.typed_expr, ', ' ORDER BY m.pos)
                      FROM pg_temp.tenancy_import_columns m WHERE m.i OPERATOR(pg_catalog.=) con.i),
                   con.from_sql);
    IF con.kind OPERATOR(pg_catalog.=) 'isolated' OR (SELECT k.relnamespace FROM pg_catalog.pg_class k
         WHERE k.oid OPERATOR(pg_catalog.=) con.tbl) OPERATOR(pg_catalog.<>) 'tenancy'::pg_catalog.regnamespace THEN
      -- An application table is written as its owner inside the target's context: its triggers, defaults, checks
      -- and index expressions run with the owner's rights, never this function's (the superuser's). The owner
      -- reads this call's rows and maps for that one statement.
      owner := (SELECT k.relowner::pg_catalog.regrole FROM pg_catalog.pg_class k
                 WHERE k.oid OPERATOR(pg_catalog.=) con.tbl);
      -- Format 1 stages every table's rows in one table, the tenant's users, keys and audit events too: the owner
      -- reads a copy of its own table's rows (under a name no one can guess), never that table.
      entry_copy := NULL;
      IF version OPERATOR(pg_catalog.=) 1 THEN
        c := 'tenancy_doc_' OPERATOR(pg_catalog.||)
             pg_catalog.replace(pg_catalog.gen_random_uuid()::pg_catalog.text, '-', '') OPERATOR(pg_catalog.||) '_entry';
        EXECUTE pg_catalog.format('CREATE TEMP TABLE %I ON COMMIT DROP AS SELECT s.table_name, s.ord, s.row FROM %s s'
                                  ' WHERE s.table_name OPERATOR(pg_catalog.=) %L', c, staging, con.name);
        entry_copy := pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', c));
        stmt := pg_catalog.replace(stmt, pg_catalog.format('FROM %s s WHERE', staging),
                                   pg_catalog.format('FROM %s s WHERE', entry_copy));
      END IF;
      FOR ref IN SELECT DISTINCT d.rel FROM (VALUES (CASE WHEN version OPERATOR(pg_catalog.=) 1 THEN entry_copy END),
                   (CASE WHEN prefix IS NOT NULL THEN
                     pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', prefix OPERATOR(pg_catalog.||) con.i)) END),
                   (pg_catalog.to_regclass('pg_temp.tenancy_import_id_map')),
                   (pg_catalog.to_regclass('pg_temp.tenancy_import_key_map'))) d(rel)
                  WHERE d.rel IS NOT NULL LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON %s TO %s', ref.rel, owner); -- regrole's text is quoted already
      END LOOP;
      -- A key the import keeps that a row here holds already (of any tenant) fails the owner's insert: reported
      -- naming the key. (Checked by the insert itself: a check before it, as this function, would convert the
      -- values to the column types with this function's rights, running the owner's domain checks and casts.)
      BEGIN
        PERFORM tenancy._write_as_table_owner(con.tbl, target, stmt);
      EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;
        RAISE EXCEPTION USING ERRCODE = 'unique_violation', CONSTRAINT = c,
          MESSAGE = pg_catalog.format('rows of table "%s" have keys that rows here hold already', con.tbl),
          DETAIL = pg_catalog.format('Key "%s" of the imported rows is kept as it is, and it is not free in this database.', c),
          HINT = CASE WHEN remap
            THEN 'Import into another database, or make the key start with the tenant column (only uuid primary keys '
                 'and keys drawn from a sequence get new values in a copy).'
            ELSE 'Import into a database where these keys are free, or import a copy under a new id (new_id), which '
                 'gives uuid primary keys and keys drawn from a sequence new values.' END;
      END;
      IF entry_copy IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TABLE %s', entry_copy);
      END IF;
    ELSE
      EXECUTE stmt;
    END IF;
  END LOOP;

  -- Sequences catch up with the values kept (same-id import into another database): the application's next
  -- insert must not draw a value an imported row holds.
  FOR con IN SELECT m.tbl, m.name FROM pg_temp.tenancy_import_columns m
              WHERE m.type OPERATOR(pg_catalog.=) ANY (ARRAY['smallint', 'integer', 'bigint']::pg_catalog.regtype[])
                AND pg_catalog.pg_get_serial_sequence(m.tbl::pg_catalog.text, m.name) IS NOT NULL LOOP
    seq := pg_catalog.pg_get_serial_sequence(con.tbl::pg_catalog.text, con.name);
    EXECUTE pg_catalog.format('SELECT pg_catalog.setval(%L::pg_catalog.regclass, m.v) FROM (SELECT pg_catalog.max(t.%I) AS v'
                   ' FROM %s t) m, %s s WHERE m.v >= CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END',
                   seq, con.name, con.tbl, seq::pg_catalog.regclass);
  END LOOP;
  DROP TABLE pg_temp.tenancy_import_entries, pg_temp.tenancy_import_columns;
  IF remap THEN
    DROP TABLE pg_temp.tenancy_import_id_map, pg_temp.tenancy_import_key_map;
  END IF;
  RETURN target;
END
$$;
COMMENT ON FUNCTION tenancy._import_staged(jsonb, regclass, uuid, text) IS
  'internal (import_tenant, import_tenant_copied as the extension owner): verifies and restores staged export rows';

-- True when a row has as many values as its table has exported columns; raises TN005 otherwise.
CREATE FUNCTION tenancy._import_field_count(fields text[], ncols integer, table_name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.cardinality(fields) OPERATOR(pg_catalog.<>) ncols THEN
    PERFORM tenancy._invalid_input('invalid export document',
      pg_catalog.format('A row of table "%s" has %s values; the table has %s exported columns.', table_name,
             pg_catalog.cardinality(fields), ncols));
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION tenancy._import_field_count(text[], integer, text) IS
  'internal: refuses a row of an export document with the wrong number of values';

-- The document form: its rows are staged in temporary tables (format 1: one jsonb table; format 2: one text table
-- per manifest entry), then imported like COPY-loaded ones.
CREATE FUNCTION tenancy._import_tenant(doc jsonb, new_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  id pg_catalog.uuid;
  version pg_catalog.int4;
  e record;
  stray pg_catalog.text;
  prefix pg_catalog.text;
BEGIN
  IF pg_catalog.jsonb_typeof(doc) IS DISTINCT FROM 'object'
     OR doc OPERATOR(pg_catalog.->>) 'format' IS DISTINCT FROM 'tenancy-tenant-export'
     OR pg_catalog.jsonb_typeof(doc OPERATOR(pg_catalog.->) 'data') IS DISTINCT FROM 'object'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(doc OPERATOR(pg_catalog.->) 'data') d
                 WHERE pg_catalog.jsonb_typeof(d.value) OPERATOR(pg_catalog.<>) 'array') THEN
    PERFORM tenancy._invalid_input('invalid export document',
      'An export document is an object with format "tenancy-tenant-export", a manifest and the data of each table.',
      'Import a document written by tenancy.export_tenant().');
  END IF;
  IF NOT coalesce(doc OPERATOR(pg_catalog.->>) 'format_version', '') OPERATOR(pg_catalog.=) ANY (ARRAY['1', '2']) THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('unsupported export format version %s', doc OPERATOR(pg_catalog.->) 'format_version'),
      'This version of tenancy reads format versions 1 and 2.');
  END IF;
  version := (doc OPERATOR(pg_catalog.->>) 'format_version')::pg_catalog.int4;
  -- The staging tables get a name of their own for this call (the caller shares the temporary schema and could
  -- prepare any fixed name with a trigger of its own), created without IF NOT EXISTS: they are this role's own.
  prefix := 'tenancy_doc_' OPERATOR(pg_catalog.||)
            pg_catalog.replace(pg_catalog.gen_random_uuid()::pg_catalog.text, '-', '') OPERATOR(pg_catalog.||) '_';
  IF version OPERATOR(pg_catalog.=) 1 THEN
    EXECUTE pg_catalog.format('CREATE TEMP TABLE %I (table_name pg_catalog.text, row pg_catalog.jsonb, ord pg_catalog.int8)'
                   ' ON COMMIT DROP', prefix OPERATOR(pg_catalog.||) 'rows');
    EXECUTE pg_catalog.format('INSERT INTO pg_temp.%I SELECT d.key, r.value, r.ord FROM pg_catalog.jsonb_each($1 -> ''data'') d,'
                   ' pg_catalog.jsonb_array_elements(d.value) WITH ORDINALITY r(value, ord)', prefix OPERATOR(pg_catalog.||) 'rows')
      USING doc;
    id := tenancy._import_staged(doc OPERATOR(pg_catalog.->) 'manifest', pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', prefix OPERATOR(pg_catalog.||) 'rows')),
                                 new_id, NULL);
    EXECUTE pg_catalog.format('DROP TABLE pg_temp.%I', prefix OPERATOR(pg_catalog.||) 'rows');
    RETURN id;
  END IF;
  PERFORM tenancy._import_check_manifest(doc OPERATOR(pg_catalog.->) 'manifest', 2);
  SELECT d.key INTO stray FROM pg_catalog.jsonb_each(doc OPERATOR(pg_catalog.->) 'data') d
   WHERE NOT d.key OPERATOR(pg_catalog.=) ANY (ARRAY(
           SELECT x.value OPERATOR(pg_catalog.->>) 'table' FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'manifest' OPERATOR(pg_catalog.->) 'tables') x))
   LIMIT 1;
  IF stray IS NOT NULL THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('rows of table "%s" are not listed in the export manifest', stray));
  END IF;
  -- Format 2: each table's rows are COPY text lines; their values go into one text staging table per entry.
  FOR e IN SELECT x.i, x.v OPERATOR(pg_catalog.->>) 'table' AS name, pg_catalog.jsonb_array_length(x.v OPERATOR(pg_catalog.->) 'columns') AS ncols,
                  coalesce(doc OPERATOR(pg_catalog.->) 'data' OPERATOR(pg_catalog.->) (x.v OPERATOR(pg_catalog.->>) 'table'), '[]') AS rows
             FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'manifest' OPERATOR(pg_catalog.->) 'tables') WITH ORDINALITY x(v, i) LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(e.rows) r
                WHERE pg_catalog.jsonb_typeof(r) OPERATOR(pg_catalog.<>) 'string') THEN
      PERFORM tenancy._invalid_input('invalid export document',
        pg_catalog.format('Each row of table "%s" must be a string (its COPY text line).', e.name));
    END IF;
    EXECUTE pg_catalog.format('CREATE TEMP TABLE %I (ord pg_catalog.int8, %s) ON COMMIT DROP', prefix OPERATOR(pg_catalog.||) e.i,
                   (SELECT pg_catalog.string_agg(pg_catalog.format('%I pg_catalog.text', 'c' OPERATOR(pg_catalog.||) k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k));
    EXECUTE pg_catalog.format('INSERT INTO pg_temp.%I SELECT r.i, %s FROM pg_catalog.jsonb_array_elements_text($1)'
                   ' WITH ORDINALITY r(line, i), LATERAL tenancy._copy_fields(r.line) f(v)'
                   ' WHERE tenancy._import_field_count(f.v, $2, $3)',
                   prefix OPERATOR(pg_catalog.||) e.i,
                   (SELECT pg_catalog.string_agg(pg_catalog.format('f.v[%s]', k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k))
      USING e.rows, e.ncols, e.name;
  END LOOP;
  id := tenancy._import_staged(doc OPERATOR(pg_catalog.->) 'manifest', NULL, new_id, prefix);
  FOR e IN SELECT x.i FROM pg_catalog.jsonb_array_elements(doc OPERATOR(pg_catalog.->) 'manifest' OPERATOR(pg_catalog.->) 'tables') WITH ORDINALITY x(v, i) LOOP
    EXECUTE pg_catalog.format('DROP TABLE pg_temp.%I', prefix OPERATOR(pg_catalog.||) e.i);
  END LOOP;
  RETURN id;
END
$$;
COMMENT ON FUNCTION tenancy._import_tenant(jsonb, uuid) IS
  'internal (import_tenant as the extension owner): stages a document''s rows and imports them';

-- The COPY form's staging: one temporary table per manifest entry (the caller's own, dropped at commit), and the
-- COPY ... FROM STDIN that loads that entry's file into it. Run it, the COPYs and import_tenant_copied in one
-- transaction. Invoker's rights: it only creates the caller's own temporary tables.
CREATE FUNCTION tenancy.import_tables(manifest jsonb)
RETURNS TABLE (ord integer, table_name text, copy_sql text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e record;
  staging pg_catalog.text;
BEGIN
  IF pg_catalog.jsonb_typeof(manifest OPERATOR(pg_catalog.->) 'tables') IS DISTINCT FROM 'array'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') x
                 WHERE pg_catalog.jsonb_typeof(x.value OPERATOR(pg_catalog.->) 'table') IS DISTINCT FROM 'string'
                    OR pg_catalog.jsonb_typeof(x.value OPERATOR(pg_catalog.->) 'columns') IS DISTINCT FROM 'array'
                    OR pg_catalog.jsonb_array_length(x.value OPERATOR(pg_catalog.->) 'columns') OPERATOR(pg_catalog.=) 0) THEN
    -- Raised here, not through tenancy._invalid_input: this function runs with the caller's rights.
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'invalid export manifest',
      DETAIL = 'A manifest has the tables of the export, each with its columns.',
      HINT = 'Use the manifest of tenancy.export_manifest().';
  END IF;
  FOR e IN SELECT x.i::pg_catalog.int4 AS i, x.v OPERATOR(pg_catalog.->>) 'table' AS name, pg_catalog.jsonb_array_length(x.v OPERATOR(pg_catalog.->) 'columns') AS ncols
             FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') WITH ORDINALITY x(v, i) LOOP
    staging := 'tenancy_import_' OPERATOR(pg_catalog.||) e.i;
    IF pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', staging)) IS NOT NULL THEN
      EXECUTE pg_catalog.format('DROP TABLE pg_temp.%I', staging);
    END IF;
    EXECUTE pg_catalog.format('CREATE TEMP TABLE %I (ord bigint GENERATED ALWAYS AS IDENTITY, %s) ON COMMIT DROP', staging,
                   (SELECT pg_catalog.string_agg(pg_catalog.format('%I text', 'c' OPERATOR(pg_catalog.||) k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k));
    ord := e.i;
    table_name := e.name;
    copy_sql := pg_catalog.format('COPY pg_temp.%I (%s) FROM STDIN', staging,
                       (SELECT pg_catalog.string_agg(pg_catalog.format('%I', 'c' OPERATOR(pg_catalog.||) k), ', ' ORDER BY k)
                          FROM pg_catalog.generate_series(1, e.ncols) k));
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy.import_tables(jsonb) IS
  'the staging tables of a COPY-form import, with the COPY ... FROM STDIN that loads each table''s file';

-- The public functions: C entry points that check the caller is an admin, run the work above as the extension
-- owner and write the audit event in the caller's name (extension/pg/export_gate.cpp).
CREATE FUNCTION tenancy.export_tenant(tenant_id uuid) RETURNS jsonb
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_export_tenant';
COMMENT ON FUNCTION tenancy.export_tenant(uuid) IS
  'the tenant as one document: registry row, users, quota overrides, usage history, keys, every isolated table''s '
  'rows and its audit events, with a manifest of row counts and SHA-256 checksums';

CREATE FUNCTION tenancy.export_manifest(tenant_id uuid) RETURNS jsonb
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_export_manifest';
COMMENT ON FUNCTION tenancy.export_manifest(uuid) IS
  'the export document without rows (counts and checksums); after the COPYs of export_tables in the same '
  'transaction, the checksums of exactly what they sent';

CREATE FUNCTION tenancy.export_tables(tenant_id uuid) RETURNS TABLE (ord integer, table_name text, copy_sql text)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE ROWS 10 AS 'MODULE_PATHNAME', 'tenancy_export_tables';
COMMENT ON FUNCTION tenancy.export_tables(uuid) IS
  'the COPY ... TO STDOUT statement of each table of a tenant export, in restore order (the COPY form)';

CREATE FUNCTION tenancy.export_table(tenant_id uuid, tbl regclass) RETURNS SETOF record
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE ROWS 1000 AS 'MODULE_PATHNAME', 'tenancy_export_table';
COMMENT ON FUNCTION tenancy.export_table(uuid, regclass) IS
  'one table''s rows of a tenant export as text columns, for the COPY statements of export_tables';

CREATE FUNCTION tenancy.import_tenant(doc jsonb, new_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_import_tenant';
COMMENT ON FUNCTION tenancy.import_tenant(jsonb, uuid) IS
  'restores an export document (format 1 or 2), into the same tenant id or new_id (keys renumbered); all or nothing';

CREATE FUNCTION tenancy.import_tenant_copied(manifest jsonb, new_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_import_tenant_copied';
COMMENT ON FUNCTION tenancy.import_tenant_copied(jsonb, uuid) IS
  'restores a COPY-form export: the manifest plus each table''s file loaded with the COPY of import_tables';

REVOKE ALL ON FUNCTION tenancy._sha256_agg_transfn(internal, text), tenancy._sha256_agg_finalfn(internal),
  tenancy._sha256_agg(text), tenancy._copy_line(text[]), tenancy._copy_fields(text), tenancy._export_columns(oid),
  tenancy._export_select(oid, name), tenancy._export_plan(), tenancy._export_head(uuid),
  tenancy._export_summary(jsonb), tenancy._import_check_manifest(jsonb, integer),
  tenancy._import_staged(jsonb, regclass, uuid, text), tenancy._import_field_count(text[], integer, text),
  tenancy._import_tenant(jsonb, uuid),
  tenancy.export_tenant(uuid), tenancy.export_manifest(uuid), tenancy.export_tables(uuid),
  tenancy.export_table(uuid, regclass), tenancy.import_tenant(jsonb, uuid), tenancy.import_tables(jsonb),
  tenancy.import_tenant_copied(jsonb, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.export_tenant(uuid), tenancy.export_manifest(uuid), tenancy.export_tables(uuid),
  tenancy.export_table(uuid, regclass), tenancy.import_tenant(jsonb, uuid), tenancy.import_tables(jsonb),
  tenancy.import_tenant_copied(jsonb, uuid) TO tenancy_admin;
