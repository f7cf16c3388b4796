-- sql/upgrade/0.2.0--0.3.0-changes.sql
-- Hand-written part of the 0.2.0 -> 0.3.0 step: objects of 0.2.0 that changed (CREATE OR REPLACE / ALTER). The
-- Makefile appends the parts that did not exist in 0.2.0 and the parts that run on every install and upgrade.
\echo Use "ALTER EXTENSION tenancy UPDATE TO '0.3.0'" to load this file. \quit

-- fairness (issue #15, findings 4 and 5): release and release_pooled move gauges only; release_pooled gives back
-- at most what the tenant itself drew from its pool (the checks are in the library; the comments say so).
COMMENT ON FUNCTION tenancy.release(uuid, text, bigint) IS
  'gives back amount of a gauge''s usage (storage_mb, concurrent_sessions; never below zero)';
COMMENT ON FUNCTION tenancy.release_pooled(uuid, text, bigint) IS
  'gives back a gauge''s consume_pooled amount to the tenant and every ancestor, at most what the tenant itself drew';

-- importmove: issue #15 finding 2 (tenancy_admin becomes superuser) and the move_guard leak (importmove).
-- import_tenant's work tables are created (never reused) under names the caller cannot have prepared; the COPY
-- form's staging tables must be plain (checked in C, extension/pg/export_gate.cpp).

CREATE OR REPLACE FUNCTION tenancy._import_staged(manifest jsonb, staging regclass, new_id uuid, prefix text) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, YMD'
  SET IntervalStyle = 'postgres' SET lc_monetary = 'C' AS $$
DECLARE
  version constant integer := CASE WHEN staging IS NULL THEN 2 ELSE 1 END;
  src uuid;
  target uuid;
  remap boolean;
  e jsonb;
  i bigint;
  tbl regclass;
  tc text;
  cols text[];
  c text;
  j integer;
  n bigint;
  checksum text;
  foreign_rows bigint;
  v_slug text;
  new_slug text;
  from_sql text;
  exprs text[];
  con record;
  ref record;
  seq text;
BEGIN
  PERFORM tenancy._import_check_manifest(manifest, version);
  src := (manifest ->> 'tenant_id')::uuid;
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
      MESSAGE = format('temporary table "%s" exists already', c),
      DETAIL = 'An import creates its own work tables of this name in the session''s temporary schema.',
      HINT = format('Drop pg_temp.%I before importing.', c);
  END IF;

  -- Where each entry's rows are: "x" in from_sql, with x.ord; _import_text gives a column's text, _import_typed
  -- its value as the target column's type.
  CREATE TEMP TABLE tenancy_import_entries (i pg_catalog.int8 PRIMARY KEY, name pg_catalog.text,
    kind pg_catalog.text, tc pg_catalog.text, cols pg_catalog.text[], rows pg_catalog.int8, sha256 pg_catalog.text,
    tbl pg_catalog.regclass, from_sql pg_catalog.text) ON COMMIT DROP;
  INSERT INTO pg_temp.tenancy_import_entries
  SELECT x.i, x.v ->> 'table', x.v ->> 'kind', x.v ->> 'tenant_column',
         ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.v -> 'columns')), (x.v ->> 'rows')::bigint,
         x.v ->> 'sha256', pg_catalog.to_regclass(x.v ->> 'table'), NULL
    FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') WITH ORDINALITY x(v, i);
  IF version OPERATOR(pg_catalog.=) 1 THEN
    EXECUTE format('SELECT s.table_name FROM %s s WHERE NOT s.table_name OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1',
                   staging)
      INTO c USING ARRAY(SELECT x.name FROM pg_temp.tenancy_import_entries x);
    IF c IS NOT NULL THEN
      PERFORM tenancy._invalid_input(format('rows of table "%s" are not listed in the export manifest', c));
    END IF;
    UPDATE pg_temp.tenancy_import_entries x SET from_sql =
      format('(SELECT s.ord, s.row FROM %s s WHERE s.table_name OPERATOR(pg_catalog.=) %L) x', staging, x.name);
  ELSE
    FOR i IN SELECT x.i FROM pg_temp.tenancy_import_entries x LOOP
      IF pg_catalog.to_regclass(format('pg_temp.%I', prefix || i)) IS NULL THEN
        PERFORM tenancy._invalid_input(format('staging table "%s" does not exist', prefix || i), NULL,
          'Run tenancy.import_tables(manifest) and load each table''s COPY file in the same transaction first.');
      END IF;
    END LOOP;
    UPDATE pg_temp.tenancy_import_entries x SET from_sql = format('pg_temp.%I x', prefix || x.i);
  END IF;

  -- Integrity: counts and checksums over the rows in order, and the owner of every row.
  FOR e IN SELECT pg_catalog.to_jsonb(x) FROM pg_temp.tenancy_import_entries x ORDER BY x.i LOOP
    cols := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e -> 'cols'));
    IF version OPERATOR(pg_catalog.=) 1 THEN
      EXECUTE format('SELECT pg_catalog.count(*), tenancy._sha256_agg(x.row::text ORDER BY x.ord),'
                     ' pg_catalog.count(*) FILTER (WHERE x.row ->> %L IS DISTINCT FROM %L) FROM %s',
                     e ->> 'tc', src, e ->> 'from_sql')
        INTO n, checksum, foreign_rows;
    ELSE
      EXECUTE format('SELECT pg_catalog.count(*), tenancy._sha256_agg(tenancy._copy_line(ARRAY[%s]) ORDER BY x.ord),'
                     ' pg_catalog.count(*) FILTER (WHERE x.%I IS DISTINCT FROM %L) FROM %s',
                     (SELECT pg_catalog.string_agg(format('x.%I', 'c' || k), ', ' ORDER BY k)
                        FROM pg_catalog.generate_series(1, pg_catalog.cardinality(cols)) k),
                     'c' || pg_catalog.array_position(cols, e ->> 'tc'), src, e ->> 'from_sql')
        INTO n, checksum, foreign_rows;
    END IF;
    IF n OPERATOR(pg_catalog.<>) (e ->> 'rows')::bigint OR checksum OPERATOR(pg_catalog.<>) (e ->> 'sha256') THEN
      PERFORM tenancy._invalid_input(format('checksum of table "%s" does not match the export manifest', e ->> 'name'),
        format('The manifest promises %s rows with SHA-256 %s; the export holds %s rows with SHA-256 %s.',
               e ->> 'rows', e ->> 'sha256', n, checksum),
        'The export was altered or truncated after it was written; export the tenant again.');
    END IF;
    IF foreign_rows > 0 THEN
      PERFORM tenancy._invalid_input(format('table "%s" of the export holds rows of another tenant', e ->> 'name'),
        format('%s rows do not belong to tenant %s.', foreign_rows, src));
    END IF;
  END LOOP;
  SELECT x.* INTO con FROM pg_temp.tenancy_import_entries x WHERE x.name OPERATOR(pg_catalog.=) 'tenancy.tenants';
  EXECUTE format('SELECT %s FROM %s LIMIT 1', CASE version WHEN 1 THEN 'x.row ->> ''slug'''
                   ELSE format('x.%I', 'c' || pg_catalog.array_position(con.cols, 'slug')) END, con.from_sql)
    INTO v_slug;
  IF v_slug IS NULL THEN
    PERFORM tenancy._invalid_input('the export holds no tenant row');
  END IF;

  -- Conflicts: the same tenant or slug here already.
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) target) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = format('tenant "%s" already exists', target),
      HINT = 'Import with new_id => gen_random_uuid() for a copy, or erase the tenant first.';
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.slug OPERATOR(pg_catalog.=) v_slug) THEN
    -- A copy beside its original gets a slug of its own: the old one followed by the start of its new id.
    new_slug := pg_catalog.left(v_slug, 54) || '-' || pg_catalog.left(target::text, 8);
    IF NOT remap OR EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.slug OPERATOR(pg_catalog.=) new_slug) THEN
      RAISE EXCEPTION USING ERRCODE = 'unique_violation',
        MESSAGE = format('tenant with slug "%s" already exists', CASE WHEN remap THEN new_slug ELSE v_slug END),
        CONSTRAINT = 'tenants_slug_key',
        HINT = 'Erase the tenant with this slug first, or import a copy under a new id (new_id).';
    END IF;
  END IF;

  -- The tables here: present, isolated alike, with every exported column.
  FOR con IN SELECT x.* FROM pg_temp.tenancy_import_entries x WHERE x.kind OPERATOR(pg_catalog.<>) 'audit' ORDER BY x.i LOOP
    IF con.tbl IS NULL THEN
      IF con.rows > 0 THEN
        PERFORM tenancy._invalid_input(format('table "%s" of the export does not exist in this database', con.name),
          NULL, 'Create the application''s tables (and isolate them) before importing a tenant.');
      END IF;
      CONTINUE;
    END IF;
    IF con.kind OPERATOR(pg_catalog.=) 'isolated' AND NOT EXISTS (
         SELECT 1 FROM tenancy.isolation_config ic
          WHERE ic.relid OPERATOR(pg_catalog.=) con.tbl AND ic.tenant_column::text OPERATOR(pg_catalog.=) con.tc) THEN
      PERFORM tenancy._invalid_input(format('table "%s" is not isolated on column "%s" in this database', con.tbl,
                                            con.tc),
        'Imported rows are only written into tables that keep them apart from other tenants.',
        format('Run SELECT tenancy.enable_isolation(%L, %L) first.', con.tbl::text, con.tc));
    END IF;
    SELECT c2 INTO c FROM pg_catalog.unnest(con.cols) c2 WHERE NOT c2 OPERATOR(pg_catalog.=) ANY (tenancy._export_columns(con.tbl)) LIMIT 1;
    IF c IS NOT NULL THEN
      PERFORM tenancy._invalid_input(format('column "%s" of table "%s" does not exist in this database', c, con.tbl),
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
  SELECT x.i, x.tbl, c2.name, c2.pos::integer, a.atttypid::regtype,
         CASE version WHEN 1 THEN format('(x.row ->> %L)', c2.name) ELSE format('x.%I', 'c' || c2.pos) END,
         CASE version WHEN 1 THEN format('r.%I', c2.name)
                      ELSE format('(x.%I)::%s', 'c' || c2.pos, a.atttypid::regtype) END,
         NULL, NULL, NULL
    FROM pg_temp.tenancy_import_entries x, pg_catalog.unnest(x.cols) WITH ORDINALITY c2(name, pos),
         pg_catalog.pg_attribute a
   WHERE x.kind OPERATOR(pg_catalog.<>) 'audit' AND a.attrelid OPERATOR(pg_catalog.=) x.tbl
     AND a.attname::text OPERATOR(pg_catalog.=) c2.name;
  IF remap THEN
    -- Renumbered keys: single-column primary (uuid, or drawn from a sequence) and unique (drawn from a sequence)
    -- keys other than the tenant column.
    UPDATE pg_temp.tenancy_import_columns m SET renumber = CASE
             WHEN m.type OPERATOR(pg_catalog.=) 'uuid'::regtype AND k.contype OPERATOR(pg_catalog.=) 'p' THEN 'uuid'
             ELSE 'sequence' END
      FROM pg_temp.tenancy_import_entries x, pg_catalog.pg_constraint k, pg_catalog.pg_attribute a
     WHERE x.i OPERATOR(pg_catalog.=) m.i AND m.name OPERATOR(pg_catalog.<>) x.tc
       AND k.conrelid OPERATOR(pg_catalog.=) m.tbl AND k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::"char"[])
       AND pg_catalog.cardinality(k.conkey) OPERATOR(pg_catalog.=) 1
       AND a.attrelid OPERATOR(pg_catalog.=) m.tbl AND a.attnum OPERATOR(pg_catalog.=) k.conkey[1]
       AND a.attname::text OPERATOR(pg_catalog.=) m.name
       AND ((m.type OPERATOR(pg_catalog.=) 'uuid'::regtype AND k.contype OPERATOR(pg_catalog.=) 'p')
            OR (m.type OPERATOR(pg_catalog.=) ANY (ARRAY['smallint', 'integer', 'bigint']::regtype[])
                AND pg_catalog.pg_get_serial_sequence(m.tbl::text, m.name) IS NOT NULL));
    -- Foreign keys referencing a renumbered key follow it (single- or multi-column, by position).
    UPDATE pg_temp.tenancy_import_columns m SET ref_tbl = r.tbl, ref_name = r.name
      FROM pg_catalog.pg_constraint f,
           ROWS FROM (pg_catalog.unnest(f.conkey), pg_catalog.unnest(f.confkey)) u(k, fk),
           pg_catalog.pg_attribute a, pg_catalog.pg_attribute ra, pg_temp.tenancy_import_columns r
     WHERE f.conrelid OPERATOR(pg_catalog.=) m.tbl AND f.contype OPERATOR(pg_catalog.=) 'f'
       AND a.attrelid OPERATOR(pg_catalog.=) m.tbl AND a.attnum OPERATOR(pg_catalog.=) u.k
       AND a.attname::text OPERATOR(pg_catalog.=) m.name
       AND ra.attrelid OPERATOR(pg_catalog.=) f.confrelid AND ra.attnum OPERATOR(pg_catalog.=) u.fk
       AND r.tbl OPERATOR(pg_catalog.=) f.confrelid AND r.name OPERATOR(pg_catalog.=) ra.attname::text
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
        EXECUTE format('INSERT INTO pg_temp.tenancy_import_id_map SELECT DISTINCT (%s)::uuid,'
                       ' pg_catalog.gen_random_uuid() FROM %s WHERE %s IS NOT NULL ON CONFLICT DO NOTHING',
                       con.text_expr, con.from_sql, con.text_expr);
      ELSE
        EXECUTE format('INSERT INTO pg_temp.tenancy_import_key_map SELECT %L, %L, d.v,'
                       ' pg_catalog.nextval(%L::pg_catalog.regclass)::text'
                       ' FROM (SELECT %s AS v, pg_catalog.min(x.ord) AS first FROM %s WHERE %s IS NOT NULL'
                       ' GROUP BY 1 ORDER BY 2) d',
                       con.tbl, con.name, pg_catalog.pg_get_serial_sequence(con.tbl::text, con.name),
                       con.text_expr, con.from_sql, con.text_expr);
      END IF;
    END LOOP;
  END IF;

  -- What each column becomes: the tenant id; a renumbered key or a reference to one through the key map; any
  -- other uuid of a copy through the id map; else its value.
  UPDATE pg_temp.tenancy_import_columns m SET typed_expr = CASE
      WHEN m.name OPERATOR(pg_catalog.=) x.tc THEN format('%L::%s', target, m.type)
      WHEN m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass AND m.name OPERATOR(pg_catalog.=) 'parent_tenant_id'
        -- A parent that is not here (another cluster) is dropped: the tenant becomes a root.
        THEN format('(SELECT p.id FROM tenancy.tenants p WHERE p.id OPERATOR(pg_catalog.=) %s)', m.typed_expr)
      WHEN remap AND m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass
           AND m.name OPERATOR(pg_catalog.=) 'encryption_key_id' THEN 'NULL::text'
      WHEN new_slug IS NOT NULL AND m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass
           AND m.name OPERATOR(pg_catalog.=) 'slug' THEN format('%L::%s', new_slug, m.type)
      WHEN remap AND (m.renumber OPERATOR(pg_catalog.=) 'sequence' OR m.ref_tbl IS NOT NULL)
        THEN format('coalesce((SELECT k.new FROM pg_temp.tenancy_import_key_map k WHERE k.tbl OPERATOR(pg_catalog.=) %L::pg_catalog.regclass'
                    ' AND k.name OPERATOR(pg_catalog.=) %L AND k.old OPERATOR(pg_catalog.=) %s)::%s, %s)',
                    coalesce(m.ref_tbl, m.tbl), coalesce(m.ref_name, m.name), m.text_expr, m.type, m.typed_expr)
      WHEN remap AND m.type OPERATOR(pg_catalog.=) 'uuid'::regtype
        THEN format('coalesce((SELECT d.new FROM pg_temp.tenancy_import_id_map d'
                    ' WHERE d.old OPERATOR(pg_catalog.=) %s), %s)', m.typed_expr, m.typed_expr)
      ELSE m.typed_expr END
    FROM pg_temp.tenancy_import_entries x WHERE x.i OPERATOR(pg_catalog.=) m.i;
  IF version OPERATOR(pg_catalog.=) 1 THEN
    UPDATE pg_temp.tenancy_import_entries x
       SET from_sql = x.from_sql || format(', LATERAL pg_catalog.jsonb_populate_record(NULL::%s, x.row) r', x.tbl)
     WHERE x.kind OPERATOR(pg_catalog.<>) 'audit';
  END IF;

  -- Unique keys the import keeps (not renumbered, no tenant column, no reference that follows a renumbered key)
  -- must be free here, or the insert would fail half way: refused up front, naming the key.
  FOR con IN
    SELECT x.from_sql, x.tbl, k.conname,
           pg_catalog.string_agg(format('t.%I OPERATOR(pg_catalog.=) %s', m.name, m.typed_expr), ' AND ') AS cond
      FROM pg_temp.tenancy_import_entries x
      JOIN pg_catalog.pg_constraint k ON k.conrelid OPERATOR(pg_catalog.=) x.tbl
                                     AND k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::"char"[])
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) x.tbl
                                    AND a.attnum OPERATOR(pg_catalog.=) ANY (k.conkey)
      LEFT JOIN pg_temp.tenancy_import_columns m ON m.i OPERATOR(pg_catalog.=) x.i
                                               AND m.name OPERATOR(pg_catalog.=) a.attname::text
     WHERE x.kind OPERATOR(pg_catalog.<>) 'audit'
     GROUP BY x.i, x.from_sql, x.tbl, x.tc, k.conname
    HAVING pg_catalog.bool_and(m.name IS NOT NULL AND m.name OPERATOR(pg_catalog.<>) x.tc
                               AND m.renumber IS NULL AND m.ref_tbl IS NULL
                               AND NOT (remap AND m.type OPERATOR(pg_catalog.=) 'uuid'::regtype))
  LOOP
    EXECUTE format('SELECT pg_catalog.count(*) FROM %s WHERE EXISTS (SELECT 1 FROM %s t WHERE %s)',
                   con.from_sql, con.tbl, con.cond) INTO n;
    IF n > 0 THEN
      RAISE EXCEPTION USING ERRCODE = 'unique_violation', CONSTRAINT = con.conname,
        MESSAGE = format('%s rows of table "%s" have keys that rows here hold already', n, con.tbl),
        DETAIL = format('Key "%s" of the imported rows is kept as it is, and it is not free in this database.',
                        con.conname),
        HINT = CASE WHEN remap
          THEN 'Import into another database, or make the key start with the tenant column (only uuid primary keys '
               'and keys drawn from a sequence get new values in a copy).'
          ELSE 'Import into a database where these keys are free, or import a copy under a new id (new_id), which '
               'gives uuid primary keys and keys drawn from a sequence new values.' END;
    END IF;
  END LOOP;

  -- The rows, table by table in manifest order (parents first), each in export order.
  FOR con IN SELECT x.* FROM pg_temp.tenancy_import_entries x ORDER BY x.i LOOP
    IF con.kind OPERATOR(pg_catalog.=) 'audit' THEN
      -- History is re-appended to this cluster's own chain (its links cannot be copied): one event per exported
      -- event, carrying the original with its hashes as provenance.
      FOR e IN EXECUTE format('SELECT %s FROM %s ORDER BY x.ord', CASE version WHEN 1 THEN 'x.row' ELSE format(
                 'pg_catalog.jsonb_build_object(%s)', (SELECT pg_catalog.string_agg(format('%L, (x.%I)::%s',
                   c2.name, 'c' || c2.pos, a.atttypid::regtype), ', ' ORDER BY c2.pos)
                   FROM pg_catalog.unnest(con.cols) WITH ORDINALITY c2(name, pos), pg_catalog.pg_attribute a
                  WHERE a.attrelid OPERATOR(pg_catalog.=) 'tenancy.audit_log'::regclass
                    AND a.attname::text OPERATOR(pg_catalog.=) c2.name)) END, con.from_sql) LOOP
        PERFORM tenancy._audit('audit_event_imported', target, NULL, e);
      END LOOP;
      CONTINUE;
    END IF;
    EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ORDER BY x.ord', con.tbl,
                   (SELECT pg_catalog.string_agg(format('%I', m.name), ', ' ORDER BY m.pos)
                      FROM pg_temp.tenancy_import_columns m WHERE m.i OPERATOR(pg_catalog.=) con.i),
                   (SELECT pg_catalog.string_agg(m.typed_expr, ', ' ORDER BY m.pos)
                      FROM pg_temp.tenancy_import_columns m WHERE m.i OPERATOR(pg_catalog.=) con.i),
                   con.from_sql);
  END LOOP;

  -- Sequences catch up with the values kept (same-id import into another database): the application's next
  -- insert must not draw a value an imported row holds.
  FOR con IN SELECT m.tbl, m.name FROM pg_temp.tenancy_import_columns m
              WHERE m.type OPERATOR(pg_catalog.=) ANY (ARRAY['smallint', 'integer', 'bigint']::regtype[])
                AND pg_catalog.pg_get_serial_sequence(m.tbl::text, m.name) IS NOT NULL LOOP
    seq := pg_catalog.pg_get_serial_sequence(con.tbl::text, con.name);
    EXECUTE format('SELECT pg_catalog.setval(%L::pg_catalog.regclass, m.v) FROM (SELECT pg_catalog.max(t.%I) AS v'
                   ' FROM %s t) m, %s s WHERE m.v >= CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END',
                   seq, con.name, con.tbl, seq::regclass);
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

CREATE OR REPLACE FUNCTION tenancy._import_tenant(doc jsonb, new_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  id uuid;
  version integer;
  e record;
  stray text;
  prefix text;
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
  IF NOT coalesce(doc ->> 'format_version', '') OPERATOR(pg_catalog.=) ANY (ARRAY['1', '2']) THEN
    PERFORM tenancy._invalid_input(format('unsupported export format version %s', doc -> 'format_version'),
      'This version of tenancy reads format versions 1 and 2.');
  END IF;
  version := (doc ->> 'format_version')::integer;
  -- The staging tables get a name of their own for this call (the caller shares the temporary schema and could
  -- prepare any fixed name with a trigger of its own), created without IF NOT EXISTS: they are this role's own.
  prefix := 'tenancy_doc_' OPERATOR(pg_catalog.||)
            pg_catalog.replace(pg_catalog.gen_random_uuid()::pg_catalog.text, '-', '') OPERATOR(pg_catalog.||) '_';
  IF version OPERATOR(pg_catalog.=) 1 THEN
    EXECUTE format('CREATE TEMP TABLE %I (table_name pg_catalog.text, row pg_catalog.jsonb, ord pg_catalog.int8)'
                   ' ON COMMIT DROP', prefix || 'rows');
    EXECUTE format('INSERT INTO pg_temp.%I SELECT d.key, r.value, r.ord FROM pg_catalog.jsonb_each($1 -> ''data'') d,'
                   ' pg_catalog.jsonb_array_elements(d.value) WITH ORDINALITY r(value, ord)', prefix || 'rows')
      USING doc;
    id := tenancy._import_staged(doc -> 'manifest', pg_catalog.to_regclass(format('pg_temp.%I', prefix || 'rows')),
                                 new_id, NULL);
    EXECUTE format('DROP TABLE pg_temp.%I', prefix || 'rows');
    RETURN id;
  END IF;
  PERFORM tenancy._import_check_manifest(doc -> 'manifest', 2);
  SELECT d.key INTO stray FROM pg_catalog.jsonb_each(doc -> 'data') d
   WHERE NOT d.key OPERATOR(pg_catalog.=) ANY (ARRAY(
           SELECT x.value ->> 'table' FROM pg_catalog.jsonb_array_elements(doc -> 'manifest' -> 'tables') x))
   LIMIT 1;
  IF stray IS NOT NULL THEN
    PERFORM tenancy._invalid_input(format('rows of table "%s" are not listed in the export manifest', stray));
  END IF;
  -- Format 2: each table's rows are COPY text lines; their values go into one text staging table per entry.
  FOR e IN SELECT x.i, x.v ->> 'table' AS name, pg_catalog.jsonb_array_length(x.v -> 'columns') AS ncols,
                  coalesce(doc -> 'data' -> (x.v ->> 'table'), '[]') AS rows
             FROM pg_catalog.jsonb_array_elements(doc -> 'manifest' -> 'tables') WITH ORDINALITY x(v, i) LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(e.rows) r
                WHERE pg_catalog.jsonb_typeof(r) OPERATOR(pg_catalog.<>) 'string') THEN
      PERFORM tenancy._invalid_input('invalid export document',
        format('Each row of table "%s" must be a string (its COPY text line).', e.name));
    END IF;
    EXECUTE format('CREATE TEMP TABLE %I (ord pg_catalog.int8, %s) ON COMMIT DROP', prefix || e.i,
                   (SELECT pg_catalog.string_agg(format('%I pg_catalog.text', 'c' || k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k));
    EXECUTE format('INSERT INTO pg_temp.%I SELECT r.i, %s FROM pg_catalog.jsonb_array_elements_text($1)'
                   ' WITH ORDINALITY r(line, i), LATERAL tenancy._copy_fields(r.line) f(v)'
                   ' WHERE tenancy._import_field_count(f.v, $2, $3)',
                   prefix || e.i,
                   (SELECT pg_catalog.string_agg(format('f.v[%s]', k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k))
      USING e.rows, e.ncols, e.name;
  END LOOP;
  id := tenancy._import_staged(doc -> 'manifest', NULL, new_id, prefix);
  FOR e IN SELECT x.i FROM pg_catalog.jsonb_array_elements(doc -> 'manifest' -> 'tables') WITH ORDINALITY x(v, i) LOOP
    EXECUTE format('DROP TABLE pg_temp.%I', prefix || e.i);
  END LOOP;
  RETURN id;
END
$$;
COMMENT ON FUNCTION tenancy._import_tenant(jsonb, uuid) IS
  'internal (import_tenant as the extension owner): stages a document''s rows and imports them';
