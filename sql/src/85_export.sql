-- sql/src/85_export.sql
-- Tenant export/import: one self-describing document (manifest with per-table SHA-256), or streamed rows for COPY.

-- SHA-256 (hex) of values in aggregation order, each followed by a newline; the checksum of an export table is
-- this aggregate over its rows' jsonb text in document order.
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

-- Columns an import writes: not dropped, not generated, in column order.
CREATE FUNCTION tenancy._export_columns(tbl oid) RETURNS text[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum > 0 AND NOT a.attisdropped
     AND a.attgenerated OPERATOR(pg_catalog.=) ''
$$;
COMMENT ON FUNCTION tenancy._export_columns(oid) IS 'internal: the stored, non-generated columns of a table';

-- The query reading one table's rows of the tenant ($1) as jsonb, in primary-key order. Identifiers are quoted.
CREATE FUNCTION tenancy._export_select(tbl oid, tenant_column name) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  order_by text;
  only_kw text := CASE WHEN (SELECT k.relkind FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) tbl)
                            OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY ' END;
BEGIN
  SELECT pg_catalog.string_agg(format('t.%I', a.attname), ', ' ORDER BY k.n) INTO order_by
    FROM pg_catalog.pg_constraint c, pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, n),
         pg_catalog.pg_attribute a
   WHERE c.conrelid OPERATOR(pg_catalog.=) tbl AND c.contype OPERATOR(pg_catalog.=) 'p'
     AND a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.=) k.attnum;
  RETURN format('SELECT pg_catalog.to_jsonb(t) FROM %s%s t WHERE t.%I OPERATOR(pg_catalog.=) $1 ORDER BY %s',
                only_kw, tbl::regclass, tenant_column, coalesce(order_by, 't::text'));
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
-- checksums. select_sql takes the tenant id as $1 and yields one jsonb per row.
CREATE FUNCTION tenancy._export_plan()
RETURNS TABLE (ord integer, table_name regclass, qualified_name text, kind text, tenant_column name, columns text[], select_sql text)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE registry AS (
    SELECT pg_catalog.to_regclass(v.name)::oid AS relid, v.col::name AS col, v.sortkey
      FROM (VALUES ('tenancy.tenants', 'id', 1), ('tenancy.users', 'tenant_id', 2),
                   ('tenancy.quota_overrides', 'tenant_id', 3), ('tenancy.usage_history', 'tenant_id', 4),
                   ('tenancy.tenant_keys', 'tenant_id', 5)) v(name, col, sortkey)
     WHERE pg_catalog.to_regclass(v.name) IS NOT NULL),
  isolated AS (
    SELECT c.relid::oid AS relid, c.tenant_column AS col,
           ARRAY(SELECT f.confrelid FROM pg_catalog.pg_constraint f
                  WHERE f.conrelid OPERATOR(pg_catalog.=) c.relid::oid AND f.contype OPERATOR(pg_catalog.=) 'f'
                    AND f.confrelid OPERATOR(pg_catalog.<>) c.relid::oid) AS refs
      FROM tenancy.isolation_config c
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::oid
     WHERE NOT k.relispartition AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])),
  -- Depth of each isolated table = its longest chain of references to other isolated tables; restoring by depth
  -- puts every referenced table first. The path check stops at a foreign-key cycle (its import then fails).
  chain (relid, depth, path) AS (
    SELECT i.relid, 0, ARRAY[i.relid] FROM isolated i
    UNION ALL
    SELECT i.relid, ch.depth + 1, ch.path || i.relid
      FROM chain ch JOIN isolated i ON ch.relid OPERATOR(pg_catalog.=) ANY (i.refs)
     WHERE NOT i.relid OPERATOR(pg_catalog.=) ANY (ch.path)),
  ordered AS (
    SELECT r.relid, 'registry' AS kind, r.col, 0 AS grp, r.sortkey AS depth FROM registry r
    UNION ALL
    SELECT i.relid, 'isolated', i.col, 1, (SELECT pg_catalog.max(ch.depth) FROM chain ch
                                            WHERE ch.relid OPERATOR(pg_catalog.=) i.relid)
      FROM isolated i)
  SELECT (pg_catalog.row_number() OVER (ORDER BY o.grp, o.depth, o.relid::regclass::text))::integer,
         o.relid::regclass, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(k.relname), o.kind,
         o.col, tenancy._export_columns(o.relid), tenancy._export_select(o.relid, o.col)
    FROM ordered o
    JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) o.relid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
  UNION ALL
  SELECT (SELECT pg_catalog.count(*) FROM ordered)::integer + 1, 'tenancy.audit_log'::regclass, 'tenancy.audit_log',
         'audit',
         'tenant_id'::name, tenancy._export_columns('tenancy.audit_log'::regclass),
         -- Not the events of the exporting transaction itself (export_manifest's own event, say), so the
         -- manifest and export_rows of one streaming export agree.
         'SELECT pg_catalog.to_jsonb(t) FROM tenancy.audit_log t WHERE t.tenant_id OPERATOR(pg_catalog.=) $1'
         ' AND (pg_catalog.pg_current_xact_id_if_assigned() IS NULL OR t.xmin OPERATOR(pg_catalog.<>)'
         ' pg_catalog.xid(pg_catalog.pg_current_xact_id_if_assigned())) ORDER BY t.id'
  ORDER BY 1
$$;
COMMENT ON FUNCTION tenancy._export_plan() IS
  'internal: the tables of a tenant export in restore order, with the query that reads each one''s rows';

-- The export document. Without data: the same manifest (counts and checksums), for the streaming form.
-- STABLE on purpose: every query inside then reads the one snapshot of the calling statement, so the tables of a
-- document are consistent with each other even under READ COMMITTED while the application keeps writing.
CREATE FUNCTION tenancy._export_tenant(tenant uuid, with_data boolean) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants := tenancy.get_tenant(tenant);
  p record;
  rows_text text;
  n bigint;
  checksum text;
  tables jsonb := '[]';
  data_parts text[] := '{}';
  manifest jsonb;
BEGIN
  FOR p IN SELECT * FROM tenancy._export_plan() ORDER BY ord LOOP
    IF with_data THEN
      -- One pass over each row's canonical jsonb text: hashed, and joined into the array text. The document is
      -- assembled as text and parsed once at the end: building it with jsonb_agg and jsonb || would take the
      -- whole document apart and put it together again several times. OFFSET 0 keeps s a subquery: pulled up,
      -- each aggregate would convert the row to text on its own (twice the jsonb_out).
      EXECUTE format('SELECT pg_catalog.string_agg(s.j, '',''), pg_catalog.count(*), tenancy._sha256_agg(s.j)'
                     ' FROM (SELECT x.j::text FROM (%s) x(j) OFFSET 0) s(j)', p.select_sql)
        INTO rows_text, n, checksum USING tenant;
      data_parts := data_parts || (pg_catalog.to_json(p.qualified_name)::text || ': ['
                                   || coalesce(rows_text, '') || ']');
    ELSE
      EXECUTE format('SELECT pg_catalog.count(*), tenancy._sha256_agg(s.j::text) FROM (%s) s(j)', p.select_sql)
        INTO n, checksum USING tenant;
    END IF;
    tables := tables || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'table', p.qualified_name, 'kind', p.kind, 'tenant_column', p.tenant_column, 'columns', p.columns,
      'rows', n, 'sha256', checksum));
  END LOOP;
  manifest := pg_catalog.jsonb_build_object(
    'tenant_id', t.id, 'slug', t.slug, 'data_residency', t.data_residency,
    'source_region', NULLIF(pg_catalog.current_setting('tenancy.region', true), ''),
    'extension_version', (SELECT e.extversion FROM pg_catalog.pg_extension e
                           WHERE e.extname OPERATOR(pg_catalog.=) 'tenancy'),
    'exported_at', tenancy._rfc3339(pg_catalog.statement_timestamp()),
    'checksum_algorithm', 'sha256 of each row''s jsonb text followed by a newline, in document order',
    'tables', tables);
  IF NOT with_data THEN
    RETURN pg_catalog.jsonb_build_object('format', 'tenancy-tenant-export', 'format_version', 1,
                                         'manifest', manifest);
  END IF;
  RETURN ('{"format": "tenancy-tenant-export", "format_version": 1, "manifest": ' || manifest::text
          || ', "data": {' || pg_catalog.array_to_string(data_parts, ', ') || '}}')::jsonb;
END
$$;
COMMENT ON FUNCTION tenancy._export_tenant(uuid, boolean) IS
  'internal (export_tenant, export_manifest as the extension owner): the export document, with or without rows';

CREATE FUNCTION tenancy._export_summary(manifest jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object(
    'source_tenant_id', manifest -> 'tenant_id', 'slug', manifest -> 'slug',
    'extension_version', manifest -> 'extension_version',
    'rows', (SELECT coalesce(pg_catalog.jsonb_object_agg(e ->> 'table', e -> 'rows'), '{}')
               FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') e))
$$;
COMMENT ON FUNCTION tenancy._export_summary(jsonb) IS 'internal: what the audit event of an export or import records';

-- The import of staged rows (staging: table_name text, row jsonb, ord bigint; document order by ord), all or
-- nothing. Everything is checked before the first row is written: the manifest's shape, each table's row count and
-- SHA-256, that every row belongs to the exported tenant (a forged document cannot write into another tenant), that
-- neither the tenant nor its slug exists here (23505), and that each table exists here, is isolated on the same
-- column and has every exported column. With new_id, the tenant id and every single-column uuid primary key are
-- replaced by fresh ids, and every uuid column holding one of the old ids (foreign keys) follows.
CREATE FUNCTION tenancy._import_staged(manifest jsonb, staging regclass, new_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  src uuid;
  target uuid;
  e jsonb;
  tbl regclass;
  col text;
  n bigint;
  checksum text;
  foreign_rows bigint;
  stray text;
  v_slug text;
  pk text;
  c text;
  ctype regtype;
  exprs text[];
  ev jsonb;
  remap boolean;
  uuid_re constant text := '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
BEGIN
  IF pg_catalog.jsonb_typeof(manifest) IS DISTINCT FROM 'object'
     OR pg_catalog.jsonb_typeof(manifest -> 'tables') IS DISTINCT FROM 'array'
     OR coalesce(manifest ->> 'tenant_id', '') !~ uuid_re THEN
    PERFORM tenancy._invalid_input('invalid export manifest',
      'A manifest is an object with the tenant_id and the tables of the export.',
      'Import a document written by tenancy.export_tenant() or tenancy.export_manifest().');
  END IF;
  src := (manifest ->> 'tenant_id')::uuid;
  target := coalesce(new_id, src);
  remap := target OPERATOR(pg_catalog.<>) src;

  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x LOOP
    IF pg_catalog.jsonb_typeof(e) IS DISTINCT FROM 'object'
       OR pg_catalog.jsonb_typeof(e -> 'table') IS DISTINCT FROM 'string'
       OR NOT coalesce(e ->> 'kind', '') OPERATOR(pg_catalog.=) ANY (ARRAY['registry', 'isolated', 'audit'])
       OR pg_catalog.jsonb_typeof(e -> 'tenant_column') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(e -> 'columns') IS DISTINCT FROM 'array'
       OR pg_catalog.jsonb_typeof(e -> 'rows') IS DISTINCT FROM 'number'
       OR pg_catalog.jsonb_typeof(e -> 'sha256') IS DISTINCT FROM 'string'
       OR NOT (e ->> 'tenant_column') OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e -> 'columns'))) THEN
      PERFORM tenancy._invalid_input('invalid export manifest',
        format('Table entry %s lacks table, kind, tenant_column, columns, rows or sha256.', e));
    END IF;
  END LOOP;
  IF (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x
       WHERE x.value ->> 'table' OPERATOR(pg_catalog.=) 'tenancy.tenants') OPERATOR(pg_catalog.<>) 1 THEN
    PERFORM tenancy._invalid_input('invalid export manifest', 'The manifest must list tenancy.tenants once.');
  END IF;
  EXECUTE format('SELECT s.table_name FROM %s s WHERE NOT s.table_name OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1',
                 staging)
    INTO stray USING ARRAY(SELECT x.value ->> 'table' FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x);
  IF stray IS NOT NULL THEN
    PERFORM tenancy._invalid_input(format('rows of table "%s" are not listed in the export manifest', stray));
  END IF;

  -- The kind and tenant column of each table are ours to decide, not the document's: a forged manifest naming
  -- another column as the tenant column (users' email holding the tenant id, say) would otherwise pass the owner
  -- check above with rows of another tenant.
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x LOOP
    IF (e ->> 'kind' OPERATOR(pg_catalog.=) 'registry' AND NOT (e ->> 'table', e ->> 'tenant_column') IN (
          ('tenancy.tenants', 'id'), ('tenancy.users', 'tenant_id'), ('tenancy.quota_overrides', 'tenant_id'),
          ('tenancy.usage_history', 'tenant_id'), ('tenancy.tenant_keys', 'tenant_id')))
       OR (e ->> 'kind' OPERATOR(pg_catalog.=) 'audit'
           AND (e ->> 'table', e ->> 'tenant_column') IS DISTINCT FROM ('tenancy.audit_log', 'tenant_id'))
       OR (e ->> 'kind' OPERATOR(pg_catalog.=) 'isolated' AND pg_catalog.to_regclass(e ->> 'table') IS NOT NULL
           AND (SELECT n.nspname FROM pg_catalog.pg_class k JOIN pg_catalog.pg_namespace n
                    ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
                 WHERE k.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(e ->> 'table')) OPERATOR(pg_catalog.=) 'tenancy')
    THEN
      PERFORM tenancy._invalid_input(format('table "%s" cannot be imported as %s data keyed by "%s"', e ->> 'table',
                                            e ->> 'kind', e ->> 'tenant_column'),
        'The manifest does not match what tenancy exports.');
    END IF;
  END LOOP;

  -- Integrity: counts and checksums over the rows in document order, and the owner of every row.
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x LOOP
    EXECUTE format('SELECT pg_catalog.count(*), tenancy._sha256_agg(x.j::text),'
                   ' pg_catalog.count(*) FILTER (WHERE x.j ->> %L IS DISTINCT FROM %L)'
                   ' FROM (SELECT s.row FROM %s s WHERE s.table_name OPERATOR(pg_catalog.=) $1 ORDER BY s.ord) x(j)',
                   e ->> 'tenant_column', src, staging)
      INTO n, checksum, foreign_rows USING e ->> 'table';
    IF n OPERATOR(pg_catalog.<>) (e ->> 'rows')::bigint OR checksum OPERATOR(pg_catalog.<>) (e ->> 'sha256') THEN
      PERFORM tenancy._invalid_input(format('checksum of table "%s" does not match the export manifest', e ->> 'table'),
        format('The manifest promises %s rows with SHA-256 %s; the document holds %s rows with SHA-256 %s.',
               e ->> 'rows', e ->> 'sha256', n, checksum),
        'The document was altered or truncated after it was exported; export the tenant again.');
    END IF;
    IF foreign_rows > 0 THEN
      PERFORM tenancy._invalid_input(format('table "%s" of the export holds rows of another tenant', e ->> 'table'),
        format('%s rows do not belong to tenant %s.', foreign_rows, src));
    END IF;
  END LOOP;
  EXECUTE format('SELECT s.row ->> ''slug'' FROM %s s WHERE s.table_name OPERATOR(pg_catalog.=) ''tenancy.tenants''',
                 staging) INTO v_slug;
  IF v_slug IS NULL THEN
    PERFORM tenancy._invalid_input('the export holds no tenant row');
  END IF;

  -- Conflicts: the same tenant or slug here already.
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) target) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = format('tenant "%s" already exists', target),
      HINT = 'Import with new_id => gen_random_uuid() for a copy, or erase the tenant first.';
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.slug OPERATOR(pg_catalog.=) v_slug) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = format('tenant with slug "%s" already exists', v_slug),
      CONSTRAINT = 'tenants_slug_key';
  END IF;

  -- The tables here: present, isolated alike, with every exported column.
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x
            WHERE x.value ->> 'kind' OPERATOR(pg_catalog.<>) 'audit' LOOP
    tbl := pg_catalog.to_regclass(e ->> 'table');
    IF tbl IS NULL THEN
      IF (e ->> 'rows')::bigint > 0 THEN
        PERFORM tenancy._invalid_input(format('table "%s" of the export does not exist in this database', e ->> 'table'),
          NULL, 'Create the application''s tables (and isolate them) before importing a tenant.');
      END IF;
      CONTINUE;
    END IF;
    IF e ->> 'kind' OPERATOR(pg_catalog.=) 'isolated' AND NOT EXISTS (
         SELECT 1 FROM tenancy.isolation_config ic
          WHERE ic.relid OPERATOR(pg_catalog.=) tbl AND ic.tenant_column::text OPERATOR(pg_catalog.=) (e ->> 'tenant_column')) THEN
      PERFORM tenancy._invalid_input(format('table "%s" is not isolated on column "%s" in this database', tbl,
                                            e ->> 'tenant_column'),
        'Imported rows are only written into tables that keep them apart from other tenants.',
        format('Run SELECT tenancy.enable_isolation(%L, %L) first.', tbl::text, e ->> 'tenant_column'));
    END IF;
    SELECT c2.name INTO c FROM pg_catalog.jsonb_array_elements_text(e -> 'columns') c2(name)
     WHERE NOT c2.name OPERATOR(pg_catalog.=) ANY (tenancy._export_columns(tbl)) LIMIT 1;
    IF c IS NOT NULL THEN
      PERFORM tenancy._invalid_input(format('column "%s" of table "%s" does not exist in this database', c, tbl),
        'Every exported column must have a stored column of the same name here.');
    END IF;
  END LOOP;

  -- New ids: the tenant, then every single-column uuid primary key of the imported tables.
  IF remap THEN
    CREATE TEMP TABLE IF NOT EXISTS tenancy_import_id_map (old uuid PRIMARY KEY, new uuid NOT NULL) ON COMMIT DROP;
    TRUNCATE pg_temp.tenancy_import_id_map;
    INSERT INTO pg_temp.tenancy_import_id_map VALUES (src, target);
    FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x
              WHERE x.value ->> 'kind' OPERATOR(pg_catalog.<>) 'audit' LOOP
      tbl := pg_catalog.to_regclass(e ->> 'table');
      CONTINUE WHEN tbl IS NULL;
      SELECT a.attname::text INTO pk FROM pg_catalog.pg_constraint k
        JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.conrelid
                                      AND a.attnum OPERATOR(pg_catalog.=) k.conkey[1]
       WHERE k.conrelid OPERATOR(pg_catalog.=) tbl AND k.contype OPERATOR(pg_catalog.=) 'p'
         AND pg_catalog.cardinality(k.conkey) OPERATOR(pg_catalog.=) 1
         AND a.atttypid OPERATOR(pg_catalog.=) 'uuid'::regtype;
      IF pk IS NOT NULL AND pk OPERATOR(pg_catalog.<>) (e ->> 'tenant_column') THEN
        EXECUTE format('INSERT INTO pg_temp.tenancy_import_id_map SELECT DISTINCT (s.row ->> %L)::uuid,'
                       ' pg_catalog.gen_random_uuid() FROM %s s WHERE s.table_name OPERATOR(pg_catalog.=) $1'
                       ' AND s.row ->> %L IS NOT NULL ON CONFLICT DO NOTHING', pk, staging, pk)
          USING e ->> 'table';
      END IF;
      pk := NULL;
    END LOOP;
  END IF;

  -- The rows, table by table in manifest order (parents first), each in document order.
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') WITH ORDINALITY x(value, i)
            ORDER BY x.i LOOP
    IF e ->> 'kind' OPERATOR(pg_catalog.=) 'audit' THEN
      -- History is re-appended to this cluster's own chain (its links cannot be copied): one event per exported
      -- event, carrying the original with its hashes as provenance.
      FOR ev IN EXECUTE format('SELECT s.row FROM %s s WHERE s.table_name OPERATOR(pg_catalog.=) $1 ORDER BY s.ord',
                               staging) USING e ->> 'table' LOOP
        PERFORM tenancy._audit('audit_event_imported', target, NULL, ev);
      END LOOP;
      CONTINUE;
    END IF;
    tbl := pg_catalog.to_regclass(e ->> 'table');
    CONTINUE WHEN tbl IS NULL;
    -- Wrapped data keys are bound to their tenant id (and ciphertexts to it): a copy under a new id cannot use
    -- them and gets a fresh key from the crypto part's insert trigger instead (encryption_key_id left NULL).
    CONTINUE WHEN remap AND tbl OPERATOR(pg_catalog.=) pg_catalog.to_regclass('tenancy.tenant_keys');
    exprs := '{}';
    FOR c IN SELECT x.name FROM pg_catalog.jsonb_array_elements_text(e -> 'columns') x(name) LOOP
      SELECT a.atttypid::regtype INTO ctype FROM pg_catalog.pg_attribute a
       WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname::text OPERATOR(pg_catalog.=) c;
      IF tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass AND c OPERATOR(pg_catalog.=) 'parent_tenant_id' THEN
        -- A parent that is not here (another cluster) is dropped: the tenant becomes a root.
        exprs := exprs || format('(SELECT p.id FROM tenancy.tenants p WHERE p.id OPERATOR(pg_catalog.=) r.%I)', c);
      ELSIF remap AND tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass
            AND c OPERATOR(pg_catalog.=) 'encryption_key_id' THEN
        exprs := exprs || 'NULL::text'::text;
      ELSIF remap AND ctype OPERATOR(pg_catalog.=) 'uuid'::regtype THEN
        exprs := exprs || format('coalesce((SELECT m.new FROM pg_temp.tenancy_import_id_map m'
                                 ' WHERE m.old OPERATOR(pg_catalog.=) r.%I), r.%I)', c, c);
      ELSE
        exprs := exprs || format('r.%I', c);
      END IF;
    END LOOP;
    EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s s,'
                   ' LATERAL pg_catalog.jsonb_populate_record(NULL::%s, s.row) r'
                   ' WHERE s.table_name OPERATOR(pg_catalog.=) $1 ORDER BY s.ord',
                   tbl, (SELECT pg_catalog.string_agg(format('%I', x.name), ', ')
                           FROM pg_catalog.jsonb_array_elements_text(e -> 'columns') x(name)),
                   pg_catalog.array_to_string(exprs, ', '), staging, tbl)
      USING e ->> 'table';
  END LOOP;
  RETURN target;
END
$$;
COMMENT ON FUNCTION tenancy._import_staged(jsonb, regclass, uuid) IS
  'internal (import_tenant, import_tenant_staged as the extension owner): verifies and restores staged export rows';

-- The document form: its rows are staged in a temporary table, then imported like streamed rows.
CREATE FUNCTION tenancy._import_tenant(doc jsonb, new_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  id uuid;
BEGIN
  IF pg_catalog.jsonb_typeof(doc) IS DISTINCT FROM 'object'
     OR doc ->> 'format' IS DISTINCT FROM 'tenancy-tenant-export'
     OR pg_catalog.jsonb_typeof(doc -> 'data') IS DISTINCT FROM 'object'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(doc -> 'data') d
                 WHERE pg_catalog.jsonb_typeof(d.value) OPERATOR(pg_catalog.<>) 'array') THEN
    PERFORM tenancy._invalid_input('invalid export document',
      'An export document is an object with format "tenancy-tenant-export", a manifest and the data of each table.',
      'Import a document written by tenancy.export_tenant().');
  END IF;
  IF doc ->> 'format_version' IS DISTINCT FROM '1' THEN
    PERFORM tenancy._invalid_input(format('unsupported export format version %s', doc -> 'format_version'),
      'This version of tenancy reads format version 1.');
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS tenancy_import_doc_rows (table_name text, row jsonb, ord bigint) ON COMMIT DROP;
  TRUNCATE pg_temp.tenancy_import_doc_rows;
  INSERT INTO pg_temp.tenancy_import_doc_rows
  SELECT d.key, r.value, r.ord
    FROM pg_catalog.jsonb_each(doc -> 'data') d, pg_catalog.jsonb_array_elements(d.value) WITH ORDINALITY r(value, ord);
  id := tenancy._import_staged(doc -> 'manifest', 'pg_temp.tenancy_import_doc_rows'::regclass, new_id);
  TRUNCATE pg_temp.tenancy_import_doc_rows;
  RETURN id;
END
$$;
COMMENT ON FUNCTION tenancy._import_tenant(jsonb, uuid) IS
  'internal (import_tenant as the extension owner): stages a document''s rows and imports them';

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
  'the export document without rows (counts and checksums), for streaming with export_rows in one snapshot';

CREATE FUNCTION tenancy.export_rows(tenant_id uuid, tbl regclass DEFAULT NULL,
                                    OUT table_name text, OUT "row" jsonb) RETURNS SETOF record
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 1000 AS 'MODULE_PATHNAME', 'tenancy_export_rows';
COMMENT ON FUNCTION tenancy.export_rows(uuid, regclass) IS
  'the rows of a tenant export (one table, or all in restore order) for COPY ... TO STDOUT; see docs/residency.md';

CREATE FUNCTION tenancy.import_tenant(doc jsonb, new_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_import_tenant';
COMMENT ON FUNCTION tenancy.import_tenant(jsonb, uuid) IS
  'restores an export document, into the same tenant id or new_id (ids remapped); all or nothing';

CREATE FUNCTION tenancy.import_tenant_staged(manifest jsonb, staging regclass, new_id uuid DEFAULT NULL)
RETURNS uuid LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_import_tenant_staged';
COMMENT ON FUNCTION tenancy.import_tenant_staged(jsonb, regclass, uuid) IS
  'restores a streamed export: the manifest plus rows COPYed into staging (table_name text, row jsonb, ord bigint)';

REVOKE ALL ON FUNCTION tenancy._sha256_agg_transfn(internal, text), tenancy._sha256_agg_finalfn(internal),
  tenancy._sha256_agg(text), tenancy._export_columns(oid), tenancy._export_select(oid, name), tenancy._export_plan(),
  tenancy._export_tenant(uuid, boolean), tenancy._export_summary(jsonb),
  tenancy._import_staged(jsonb, regclass, uuid), tenancy._import_tenant(jsonb, uuid),
  tenancy.export_tenant(uuid), tenancy.export_manifest(uuid), tenancy.export_rows(uuid, regclass),
  tenancy.import_tenant(jsonb, uuid), tenancy.import_tenant_staged(jsonb, regclass, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.export_tenant(uuid), tenancy.export_manifest(uuid),
  tenancy.export_rows(uuid, regclass), tenancy.import_tenant(jsonb, uuid),
  tenancy.import_tenant_staged(jsonb, regclass, uuid) TO tenancy_admin;
