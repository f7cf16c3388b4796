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

CREATE OR REPLACE FUNCTION tenancy._import_tenant(doc jsonb, new_id uuid) RETURNS uuid
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

-- fairness (issue #15, finding 5): verify_isolation() also reports a unique key without the tenant column (an
-- existence oracle across tenants).
CREATE OR REPLACE FUNCTION tenancy.verify_isolation(OUT table_name regclass, OUT problem text, OUT hint text)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
WITH cfg AS (
  SELECT c.*, c.relid::oid AS rel FROM tenancy.isolation_config c
   WHERE EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = c.relid::oid)
),
tenant_columns AS (
  SELECT 'tenant_id'::name AS col
  UNION SELECT tenant_column FROM tenancy.isolation_config
  UNION SELECT current_setting('tenancy.auto_isolate', true)::name WHERE current_setting('tenancy.auto_isolate', true) <> ''
),
user_tables AS (
  SELECT k.oid, k.relkind FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
   WHERE k.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy')
     AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
),
app_members AS (
  WITH RECURSIVE m(roleid) AS (
    SELECT a.member FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid WHERE r.rolname = 'tenancy_app'
    UNION SELECT a.member FROM pg_auth_members a JOIN m ON a.roleid = m.roleid)
  SELECT roleid FROM m
),
generated AS (
  SELECT 'tenancy_isolation'::name AS polname UNION ALL SELECT 'tenancy_descendants_read'
  UNION ALL SELECT 'tenancy_admin_cross_tenant'
)
-- 1. a table with a tenant column and no policy
SELECT t.oid::regclass, format('table has a tenant column %I but no isolation policy', a.attname),
       format('SELECT tenancy.enable_isolation(%L, %L);', t.oid::regclass::text, a.attname)
  FROM user_tables t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE a.atttypid = 'uuid'::regtype AND a.attname IN (SELECT col FROM tenant_columns)
   AND NOT EXISTS (SELECT 1 FROM cfg WHERE cfg.rel = t.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = t.oid)
UNION ALL
-- 2. row level security off or not forced (the owner would bypass it)
SELECT cfg.relid, CASE WHEN NOT k.relrowsecurity THEN 'row level security is not enabled'
                       ELSE 'row level security is not forced' END,
       format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;', cfg.relid)
  FROM cfg JOIN pg_class k ON k.oid = cfg.rel
 WHERE NOT (k.relrowsecurity AND k.relforcerowsecurity)
UNION ALL
-- 3a. a generated policy missing or edited by hand
SELECT cfg.relid,
       CASE WHEN p.oid IS NULL THEN format('generated policy %I is missing', g.polname)
            ELSE format('generated policy %I was changed by hand', g.polname) END,
       format('SELECT tenancy.enable_isolation(%L, %L, %s);', cfg.relid::text, cfg.tenant_column,
              cfg.include_descendants::text)
  FROM cfg CROSS JOIN generated g
  LEFT JOIN pg_policy p ON p.polrelid = cfg.rel AND p.polname = g.polname
 WHERE (g.polname <> 'tenancy_descendants_read' OR cfg.include_descendants)
   AND (p.oid IS NULL OR NOT p.polpermissive
        OR (g.polname = 'tenancy_isolation' AND (p.polcmd <> '*' OR p.polroles <> '{0}'
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.policy_qual
            OR pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM cfg.policy_check))
        OR (g.polname = 'tenancy_descendants_read' AND (p.polcmd <> 'r' OR p.polroles <> '{0}'
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.descendants_qual))
        OR (g.polname = 'tenancy_admin_cross_tenant' AND (p.polcmd <> 'r'
            OR p.polroles <> ARRAY[(SELECT oid FROM pg_roles WHERE rolname = 'tenancy_admin')]
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.cross_tenant_qual)))
UNION ALL
-- 3b. an extra permissive policy: permissive policies are OR-ed, so it widens what the table shows
SELECT cfg.relid, format('extra permissive policy %I widens access beyond the tenant', p.polname),
       format('DROP POLICY %I ON %s; (or recreate it AS RESTRICTIVE)', p.polname, cfg.relid)
  FROM cfg JOIN pg_policy p ON p.polrelid = cfg.rel
 WHERE p.polpermissive AND p.polname NOT IN (SELECT polname FROM generated)
UNION ALL
-- 3c. a descendants policy left on a table isolated without include_descendants
SELECT cfg.relid, 'policy tenancy_descendants_read exists but the table was isolated without include_descendants',
       format('SELECT tenancy.enable_isolation(%L, %L, false);', cfg.relid::text, cfg.tenant_column)
  FROM cfg JOIN pg_policy p ON p.polrelid = cfg.rel AND p.polname = 'tenancy_descendants_read'
 WHERE NOT cfg.include_descendants
UNION ALL
-- 4. a partition or inheritance child of an isolated table that is reachable directly without the policy
SELECT i.inhrelid::regclass,
       format('%s of isolated table %s has no isolation policy',
              CASE WHEN k.relispartition THEN 'partition' ELSE 'inheritance child' END, i.inhparent::regclass),
       format('SELECT tenancy.enable_isolation(%L, %L, %s);', cfg.root::text, cfg.tenant_column,
              cfg.include_descendants::text)
  FROM cfg JOIN pg_inherits i ON i.inhparent = cfg.rel JOIN pg_class k ON k.oid = i.inhrelid
 WHERE NOT EXISTS (SELECT 1 FROM cfg c2 WHERE c2.rel = i.inhrelid)
UNION ALL
-- 5. a view over an isolated table that runs with its owner's rights and lets quals be pushed into it
SELECT DISTINCT v.oid::regclass,
       CASE v.relkind WHEN 'm'
            THEN format('materialized view over isolated table %s stores its rows outside row level security', cfg.relid)
            ELSE format('view over isolated table %s is neither security_invoker nor security_barrier', cfg.relid) END,
       CASE v.relkind WHEN 'm' THEN format('DROP MATERIALIZED VIEW %s; (its rows are stored outside row level security)', v.oid::regclass)
            ELSE format('ALTER VIEW %s SET (security_invoker = true);', v.oid::regclass) END
  FROM cfg JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = cfg.rel
                            AND d.classid = 'pg_rewrite'::regclass
  JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
 WHERE v.oid <> cfg.rel AND v.relkind IN ('v', 'm')
   AND (v.relkind = 'm' OR NOT EXISTS (
        SELECT 1 FROM pg_options_to_table(v.reloptions) o
         WHERE o.option_name IN ('security_invoker', 'security_barrier')
           AND lower(o.option_value) IN ('true', 'on', 'yes', '1')))
UNION ALL
-- 6. a SECURITY DEFINER function owned by a role that bypasses row level security and callable by the app role
SELECT NULL::regclass,
       format('SECURITY DEFINER function %s is owned by %I, which bypasses row level security, and tenancy_app can execute it',
              p.oid::regprocedure, o.rolname),
       format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, tenancy_app; or ALTER FUNCTION %s OWNER TO a role without BYPASSRLS;',
              p.oid::regprocedure, p.oid::regprocedure)
  FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid
                     AND e.deptype = 'e')
   AND has_function_privilege('tenancy_app', p.oid, 'EXECUTE')
UNION ALL
-- 7. an application role that bypasses row level security (or owns an isolated table, so it can switch it off)
SELECT NULL::regclass,
       format('role %I is a member of tenancy_app and has %s', r.rolname,
              CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'BYPASSRLS' END),
       format('ALTER ROLE %I %s;', r.rolname, CASE WHEN r.rolsuper THEN 'NOSUPERUSER' ELSE 'NOBYPASSRLS' END)
  FROM pg_roles r WHERE r.oid IN (SELECT roleid FROM app_members) AND (r.rolsuper OR r.rolbypassrls)
UNION ALL
SELECT cfg.relid, format('table is owned by %I, a member of tenancy_app, which can disable row level security', o.rolname),
       format('ALTER TABLE %s OWNER TO a role that is not an application role;', cfg.relid)
  FROM cfg JOIN pg_class k ON k.oid = cfg.rel JOIN pg_roles o ON o.oid = k.relowner
 WHERE k.relowner IN (SELECT roleid FROM app_members)
UNION ALL
-- 8. a unique key (primary key, unique constraint or index, exclusion constraint) without the tenant column among
-- its key columns: uniqueness is checked across every tenant's rows, so an INSERT (23505) tells whether another
-- tenant has that value. Inherent to row level security; a key that includes the tenant column only conflicts
-- within the tenant. Partition indexes are reported once, on the partitioned table.
SELECT cfg.relid,
       pg_catalog.format('unique key %I does not include the tenant column %I: an insert reveals whether another tenant has the same value',
                         ik.relname, cfg.tenant_column),
       CASE WHEN con.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::pg_catalog."char"[])
            THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s (%I, %s);', cfg.relid,
                                   con.conname, con.conname,
                                   CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END,
                                   cfg.tenant_column, key_columns.list)
            WHEN con.contype OPERATOR(pg_catalog.=) 'x'
            THEN pg_catalog.format('recreate exclusion constraint %I with (%I WITH =) as its first element',
                                   con.conname, cfg.tenant_column)
            ELSE pg_catalog.format('DROP INDEX %s; CREATE UNIQUE INDEX %I ON %s (%I, %s)%s;', x.indexrelid::pg_catalog.regclass,
                                   ik.relname, cfg.relid, cfg.tenant_column, key_columns.list,
                                   CASE WHEN x.indpred IS NOT NULL
                                        THEN ' WHERE ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(x.indpred, x.indrelid, true)
                                        ELSE '' END) END
  FROM cfg JOIN pg_catalog.pg_index x ON x.indrelid OPERATOR(pg_catalog.=) cfg.rel
  JOIN pg_catalog.pg_class ik ON ik.oid OPERATOR(pg_catalog.=) x.indexrelid
  LEFT JOIN pg_catalog.pg_constraint con ON con.conindid OPERATOR(pg_catalog.=) x.indexrelid
        AND con.conrelid OPERATOR(pg_catalog.=) cfg.rel AND con.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u', 'x']::pg_catalog."char"[])
  CROSS JOIN LATERAL (
    SELECT pg_catalog.string_agg(pg_catalog.pg_get_indexdef(x.indexrelid, n, true), ', ' ORDER BY n) AS list
      FROM pg_catalog.generate_series(1, x.indnkeyatts::pg_catalog.int4) AS n
     WHERE x.indkey[n OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) 0
        OR pg_catalog.pg_get_indexdef(x.indexrelid, n, true) OPERATOR(pg_catalog.<>) pg_catalog.quote_ident(cfg.tenant_column)
  ) AS key_columns
 WHERE (x.indisunique OR x.indisexclusion)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits pi WHERE pi.inhrelid OPERATOR(pg_catalog.=) x.indexrelid)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.generate_series(0, x.indnkeyatts::pg_catalog.int4 OPERATOR(pg_catalog.-) 1) AS k
                     JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) cfg.rel
                      AND a.attnum OPERATOR(pg_catalog.=) x.indkey[k]
                    WHERE a.attname OPERATOR(pg_catalog.=) cfg.tenant_column)
ORDER BY 1 NULLS LAST, 2
$$;

-- ==== privilege model (98_ownership.sql): a tenant's rows of tracked tables are counted as the superuser, and a
-- tracked table that could run code of its owner's is refused.
-- The rows of one tenant in the tables tracked for a metric (counters of users and projects load from this).
-- Runs as the superuser (the owner role has no right on application tables), so it reads only what runs no code
-- of the table owner's: a plain or partitioned table (not one turned into a view) whose tenant column is still
-- exactly uuid (a type of the owner's could bring an implicit cast function into the comparison).
CREATE OR REPLACE FUNCTION tenancy._quota_count_rows(tenant uuid, metric text) RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tracked record;
  total pg_catalog.int8 := 0;
  n pg_catalog.int8;
BEGIN
  FOR tracked IN SELECT q.*, c.relkind, a.atttypid
                   FROM tenancy.quota_tracked_tables q
                   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) q.table_name
                   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                        AND a.attname OPERATOR(pg_catalog.=) q.tenant_column AND NOT a.attisdropped
                  WHERE q.metric OPERATOR(pg_catalog.=) _quota_count_rows.metric
                  ORDER BY q.table_name::pg_catalog.oid LOOP
    IF NOT (tracked.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[]))
       OR tracked.atttypid IS DISTINCT FROM 'pg_catalog.uuid'::pg_catalog.regtype THEN
      RAISE EXCEPTION 'tracked table % no longer has a uuid column "%"', tracked.table_name, tracked.tenant_column
        USING ERRCODE = '42804',
              HINT = 'Restore the table and its tenant column, or run tenancy.track_quota() on a table that has one.';
    END IF;
    -- Read with superuser rights: planning the count must run no code of the table's owner. On the write path
    -- (a counter's first load), so without holding off a VACUUM or CREATE INDEX of the table.
    PERFORM tenancy._require_plain_read(tracked.table_name, false);
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I OPERATOR(pg_catalog.=) $1%s',
                   tracked.table_name, tracked.tenant_column,
                   CASE WHEN tracked.status_column IS NULL THEN ''
                        ELSE pg_catalog.format(' AND %I::pg_catalog.text OPERATOR(pg_catalog.<>) ''disabled''',
                                               tracked.status_column) END)
      INTO n USING tenant;
    total := total OPERATOR(pg_catalog.+) n;
  END LOOP;
  RETURN total;
END
$$;

-- ==== privilege model: the export's superuser read refuses a table that could run code of its owner's.
-- The query reading one table's exported columns of the tenant's ($1) rows, in primary-key order (whole-row order
-- without one). Identifiers are quoted. The export runs it as the superuser (every tenant's rows, under every
-- table's policy), so a table that could bring code of its owner's into that query is refused: it must still be
-- a plain or partitioned table (not one turned into a view) whose tenant column is exactly uuid (a type of the
-- owner's could add an implicit cast function to the comparison).
CREATE OR REPLACE FUNCTION tenancy._export_select(tbl oid, tenant_column name) RETURNS text
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

-- importmove (2): issue #15 finding 2, the live move's subscription, and the move_guard leak (importmove).
-- move_guard answers an app caller only about its context tenant (now in C); move_target_subscribe takes the
-- source's connection string only from tenancy.region_connections (new part 89_region_connections.sql,
-- superuser-only) and enables the subscription only for the move's tables; every function of 88_move.sql now
-- qualifies its types, operators and functions (pg_catalog.*).

CREATE OR REPLACE FUNCTION tenancy._move_name(tenant uuid) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ('tenancy_move_' OPERATOR(pg_catalog.||) pg_catalog.replace(tenant::pg_catalog.text, '-', ''))::pg_catalog.name
$$;
COMMENT ON FUNCTION tenancy._move_name(uuid) IS 'internal: publication, slot and subscription name of a tenant move';

CREATE OR REPLACE FUNCTION tenancy._move_tables()
RETURNS TABLE (relid regclass, tenant_column name, kind text)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT c.relid, c.tenant_column, 'isolated'
    FROM tenancy.isolation_config c JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid
   WHERE NOT k.relispartition AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
  UNION ALL
  SELECT v.t::pg_catalog.regclass, 'tenant_id'::pg_catalog.name, 'registry'
    FROM (VALUES ('tenancy.users'), ('tenancy.quota_overrides'), ('tenancy.usage_history'),
                 ('tenancy.move_markers')) v(t)
   WHERE pg_catalog.to_regclass(v.t) IS NOT NULL
$$;
COMMENT ON FUNCTION tenancy._move_tables() IS 'internal: the tables a live move replicates, with their tenant column';

CREATE OR REPLACE FUNCTION tenancy._move_guarded_tables()
RETURNS TABLE (relid regclass, tenant_column name)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT t.relid, t.tenant_column FROM tenancy._move_tables() t
   WHERE t.relid OPERATOR(pg_catalog.<>) 'tenancy.move_markers'::pg_catalog.regclass
  UNION ALL SELECT 'tenancy.tenants'::pg_catalog.regclass, 'id'::pg_catalog.name
  UNION ALL SELECT 'tenancy.tenant_keys'::pg_catalog.regclass, 'tenant_id'::pg_catalog.name
  -- Tokens are not replicated (tenancyd copies them after the switch): none may be issued or revoked meanwhile.
  UNION ALL SELECT 'tenancy.tenant_tokens'::pg_catalog.regclass, 'tenant_id'::pg_catalog.name
$$;
COMMENT ON FUNCTION tenancy._move_guarded_tables() IS 'internal: the tables whose writes a move freeze refuses';

CREATE OR REPLACE FUNCTION tenancy._move_check(tenants uuid[]) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
BEGIN
  FOR m IN SELECT * FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) ANY (tenants)
            ORDER BY mv.tenant_id FOR SHARE LOOP
    CONTINUE WHEN NOT m.frozen;
    IF m.side OPERATOR(pg_catalog.=) 'source' THEN
      RAISE EXCEPTION USING ERRCODE = 'object_in_use',
        MESSAGE = pg_catalog.format('tenant "%s" is being moved to region "%s"', m.tenant_id, m.target_region),
        DETAIL = 'Writes are paused for the final switch of a live move.',
        HINT = 'Retry in a moment: the tenant is then served by its new region.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
      MESSAGE = pg_catalog.format('tenant "%s" is being moved into this region', m.tenant_id),
      DETAIL = pg_catalog.format('Its data is still being copied; region "%s" serves it until the switch.', m.source_region),
      HINT = 'Send the request to the tenant''s current region.';
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_check(uuid[]) IS 'internal: raises 55006 when a tenant''s writes are frozen by a move';

CREATE OR REPLACE FUNCTION tenancy._move_guard() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  -- NEW is NULL in a DELETE, OLD in an INSERT: their NULL ids match nothing.
  ids pg_catalog.uuid[] := ARRAY[(pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.->>) TG_ARGV[0])::pg_catalog.uuid, (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.->>) TG_ARGV[0])::pg_catalog.uuid];
  m record;
BEGIN
  FOR m IN SELECT mv.tenant_id, mv.frozen FROM tenancy.tenant_moves mv
            WHERE mv.tenant_id OPERATOR(pg_catalog.=) ANY (ids) ORDER BY mv.tenant_id FOR SHARE LOOP
    IF m.frozen THEN
      PERFORM tenancy._move_check(ARRAY[m.tenant_id]);
    END IF;
  END LOOP;
  RETURN coalesce(NEW, OLD);
END
$$;
COMMENT ON FUNCTION tenancy._move_guard() IS 'internal: trigger refusing writes of a tenant frozen by a live move';

CREATE OR REPLACE FUNCTION tenancy.move_guard(tenant_id uuid) RETURNS boolean
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_move_guard';
COMMENT ON FUNCTION tenancy.move_guard(uuid) IS
  'true, or 55006 while a live move freezes the tenant''s writes; holds them off the freeze until commit '
  '(the context tenant only, unless tenancy_admin)';

CREATE OR REPLACE FUNCTION tenancy._move_set_guards(enable boolean) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM tenancy._move_ddl(ARRAY(
    SELECT CASE WHEN enable
             THEN pg_catalog.format('CREATE TRIGGER tenancy_move_guard BEFORE INSERT OR UPDATE OR DELETE ON %s'
                                    ' FOR EACH ROW EXECUTE FUNCTION tenancy._move_guard(%L)', g.relid, g.tenant_column)
             ELSE pg_catalog.format('DROP TRIGGER IF EXISTS tenancy_move_guard ON %s', g.relid) END
      FROM tenancy._move_guarded_tables() g
     WHERE NOT enable OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg
                                      WHERE tg.tgrelid OPERATOR(pg_catalog.=) g.relid::pg_catalog.oid
                                        AND tg.tgname OPERATOR(pg_catalog.=) 'tenancy_move_guard')
     ORDER BY g.relid::pg_catalog.text));
END
$$;
COMMENT ON FUNCTION tenancy._move_set_guards(boolean) IS 'internal: installs or removes the move guard triggers';

CREATE OR REPLACE FUNCTION tenancy._move_unguard_last(tenant uuid, want_side text) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenant_moves mv
                  WHERE mv.tenant_id OPERATOR(pg_catalog.<>) tenant OR mv.side OPERATOR(pg_catalog.<>) want_side) THEN
    PERFORM tenancy._move_set_guards(false);
  END IF;
END
$$;
COMMENT ON FUNCTION tenancy._move_unguard_last(uuid, text) IS
  'internal: removes the move guards before the last move row is locked (no deadlock with a waiting writer)';

CREATE OR REPLACE FUNCTION tenancy._move_widen_identities() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  stmts pg_catalog.text[] := '{}';
BEGIN
  FOR r IN
    SELECT p.rel, t.tenant_column, k.relreplident,
           (SELECT ic.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
             WHERE i.indrelid OPERATOR(pg_catalog.=) p.rel::pg_catalog.oid AND i.indisreplident) AS ident_index,
           (SELECT a.attnum FROM pg_catalog.pg_attribute a
             WHERE a.attrelid OPERATOR(pg_catalog.=) p.rel::pg_catalog.oid AND a.attname OPERATOR(pg_catalog.=) t.tenant_column) AS col
      FROM tenancy._move_tables() t,
           -- pg_partition_tree lists nothing for a table that is not partitioned: the table itself, then its tree.
           LATERAL (SELECT t.relid AS rel UNION SELECT pt.relid FROM pg_catalog.pg_partition_tree(t.relid) pt) p
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) p.rel::pg_catalog.oid
     WHERE k.relkind OPERATOR(pg_catalog.=) 'r'
  LOOP
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'f';
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'd' AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) r.rel::pg_catalog.oid AND i.indisprimary
        AND r.col OPERATOR(pg_catalog.=) ANY (i.indkey::int2[]));
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'i' AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) r.rel::pg_catalog.oid AND i.indisreplident
        AND r.col OPERATOR(pg_catalog.=) ANY (i.indkey::int2[]));
    INSERT INTO tenancy.move_replica_identities VALUES (r.rel, r.relreplident, r.ident_index)
      ON CONFLICT (relid) DO NOTHING;
    stmts := stmts OPERATOR(pg_catalog.||) pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', r.rel);
  END LOOP;
  PERFORM tenancy._move_ddl(stmts);
END
$$;
COMMENT ON FUNCTION tenancy._move_widen_identities() IS
  'internal: REPLICA IDENTITY FULL where a move''s row filter column is outside the replica identity';

CREATE OR REPLACE FUNCTION tenancy._move_restore_identities() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.move_replica_identities;
  stmts pg_catalog.text[] := '{}';
BEGIN
  FOR r IN DELETE FROM tenancy.move_replica_identities RETURNING * LOOP
    CONTINUE WHEN pg_catalog.to_regclass(r.relid::pg_catalog.text) IS NULL;
    stmts := stmts OPERATOR(pg_catalog.||) pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY %s', r.relid,
                   CASE r.identity WHEN 'd' THEN 'DEFAULT' WHEN 'n' THEN 'NOTHING'
                                   ELSE pg_catalog.format('USING INDEX %I', r.index_name) END);
  END LOOP;
  PERFORM tenancy._move_ddl(stmts);
END
$$;
COMMENT ON FUNCTION tenancy._move_restore_identities() IS 'internal: restores the replica identities moves widened';

CREATE OR REPLACE FUNCTION tenancy._move_table_list(tenant uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t record;
  n pg_catalog.int8;
  out pg_catalog.jsonb := '[]';
BEGIN
  FOR t IN SELECT * FROM tenancy._move_tables() ORDER BY kind DESC, relid::pg_catalog.text LOOP
    -- counted with superuser rights (move_source_prepare): planning the count must run no code of the owner's,
    -- nor may a tenant column of the owner's type bring its cast to uuid into the comparison
    PERFORM tenancy._require_plain_read(t.relid);
    IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) t.relid AND a.attname OPERATOR(pg_catalog.=) t.tenant_column
           AND NOT a.attisdropped) IS DISTINCT FROM 'pg_catalog.uuid'::pg_catalog.regtype THEN
      RAISE EXCEPTION 'cannot move % of a tenant: it is no longer a table with a uuid column "%"', t.relid,
        t.tenant_column USING ERRCODE = '42804',
        HINT = 'Restore the table and its tenant column, or disable isolation of it with tenancy.disable_isolation().';
    END IF;
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s x WHERE x.%I OPERATOR(pg_catalog.=) $1', t.relid,
                   t.tenant_column) INTO n USING tenant;
    out := out OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'table', t.relid::pg_catalog.text, 'kind', t.kind, 'tenant_column', t.tenant_column, 'rows', n));
  END LOOP;
  RETURN out;
END
$$;
COMMENT ON FUNCTION tenancy._move_table_list(uuid) IS 'internal: the replicated tables of a move with row counts';

CREATE OR REPLACE FUNCTION tenancy._move_record(tenant uuid, want_side text) RETURNS tenancy.tenant_moves
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
BEGIN
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) tenant FOR UPDATE;
  IF NOT FOUND OR m.side OPERATOR(pg_catalog.<>) want_side THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('tenant "%s" is not being moved %s this cluster', tenant,
                       CASE want_side WHEN 'source' THEN 'out of' ELSE 'into' END);
  END IF;
  RETURN m;
END
$$;
COMMENT ON FUNCTION tenancy._move_record(uuid, text) IS 'internal: the move row of a tenant on one side, locked';

CREATE OR REPLACE FUNCTION tenancy._move_lock_holders(tenant uuid, only_mine boolean) RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks l
   WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted AND l.objsubid OPERATOR(pg_catalog.=) 2
     AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                             WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
     AND l.classid OPERATOR(pg_catalog.=) 1953459574::pg_catalog.oid
     AND l.objid OPERATOR(pg_catalog.=)
         ((pg_catalog.hashtext(tenant::pg_catalog.text)::pg_catalog.int8 OPERATOR(pg_catalog.&) 4294967295)::pg_catalog.oid)
     AND (NOT only_mine OR l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())
$$;
COMMENT ON FUNCTION tenancy._move_lock_holders(uuid, boolean) IS
  'internal: holds of the orchestrator lock of a tenant''s move (all sessions, or this one)';

CREATE OR REPLACE FUNCTION tenancy._move_lock_try(tenant uuid) RETURNS boolean
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.pg_try_advisory_lock(1953459574, pg_catalog.hashtext(tenant::pg_catalog.text))
$$;
COMMENT ON FUNCTION tenancy._move_lock_try(uuid) IS 'internal: takes the orchestrator lock of a tenant''s move';

CREATE OR REPLACE FUNCTION tenancy._move_lock_release(tenant uuid) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Every hold of this session (a session that adopted and prepared holds it twice); none of another session.
  FOR i IN 1 .. tenancy._move_lock_holders(tenant, true) LOOP
    PERFORM pg_catalog.pg_advisory_unlock(1953459574, pg_catalog.hashtext(tenant::pg_catalog.text));
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_lock_release(uuid) IS 'internal: releases this session''s orchestrator lock';

CREATE OR REPLACE FUNCTION tenancy.move_orphans()
RETURNS TABLE (tenant_id uuid, target_region text, phase text, frozen boolean, started_at timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT m.tenant_id, m.target_region, m.phase, m.frozen, m.started_at FROM tenancy.tenant_moves m
   WHERE m.side OPERATOR(pg_catalog.=) 'source' AND tenancy._move_lock_holders(m.tenant_id, false) OPERATOR(pg_catalog.=) 0
   ORDER BY m.started_at
$$;
COMMENT ON FUNCTION tenancy.move_orphans() IS
  'live moves out of this cluster whose orchestrator session is gone (no session holds the move''s lock)';

CREATE OR REPLACE FUNCTION tenancy.move_adopt(tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT tenancy._move_lock_try(tenant_id) THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_adopt.tenant_id
                AND m.side OPERATOR(pg_catalog.=) 'source') THEN
    RETURN true;
  END IF;
  PERFORM pg_catalog.pg_advisory_unlock(1953459574, pg_catalog.hashtext(tenant_id::pg_catalog.text));
  RETURN false;
END
$$;
COMMENT ON FUNCTION tenancy.move_adopt(uuid) IS
  'live move, source: takes over an orphaned move (its orchestrator lock); then roll it back or finish it';

CREATE OR REPLACE FUNCTION tenancy.move_source_prepare(tenant_id uuid, target_region text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants;
  target tenancy.data_residency;
  pub pg_catalog.name := tenancy._move_name(tenant_id);
  tables pg_catalog.text;
  list pg_catalog.jsonb;
BEGIN
  -- NO KEY UPDATE, not UPDATE: an application transaction may hold a lock on a table this function alters next while
  -- its foreign key check waits for a KEY SHARE lock on this row; that must not wait for us (deadlock).
  SELECT * INTO t FROM tenancy.tenants x WHERE x.id OPERATOR(pg_catalog.=) tenant_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(tenant_id);
  END IF;
  IF NOT target_region OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.data_residency)::pg_catalog.text[]) THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('invalid data residency "%s"', target_region), NULL,
                                   'Valid residencies are us, eu, uk, canada and australia.');
  END IF;
  target := target_region::tenancy.data_residency;
  IF target OPERATOR(pg_catalog.=) t.data_residency THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('tenant "%s" already resides in region "%s"', t.slug, target_region));
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants c WHERE c.parent_tenant_id OPERATOR(pg_catalog.=) tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = pg_catalog.format('tenant "%s" has child tenants', t.slug),
      HINT = 'Move or re-parent the child tenants first.';
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_source_prepare.tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use', MESSAGE = pg_catalog.format('tenant "%s" is already being moved', t.slug),
      HINT = 'Wait for the move to finish, or roll it back with tenancy.move_source_finish(id, ''rolled_back'').';
  END IF;
  IF pg_catalog.current_setting('wal_level') OPERATOR(pg_catalog.<>) 'logical' THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = 'a live move needs wal_level = logical on the source cluster',
      HINT = 'Set wal_level = logical (and max_replication_slots, max_wal_senders) and restart the server.';
  END IF;
  -- This session orchestrates the move from now on (move_orphans, move_adopt). Taken after the checks, so a refused
  -- prepare holds nothing; a session that still holds the lock of an earlier move of the tenant keeps it.
  IF NOT tenancy._move_lock_try(tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
      MESSAGE = pg_catalog.format('another session holds the move lock of tenant "%s"', t.slug),
      HINT = 'A session that took over an earlier move of this tenant (tenancy.move_adopt) is still open.';
  END IF;

  INSERT INTO tenancy.tenant_moves (tenant_id, side, source_region, target_region, phase, publication_name, slot_name)
  VALUES (tenant_id, 'source', t.data_residency::pg_catalog.text, target_region, 'prepare', pub, pub);
  INSERT INTO tenancy.move_markers (tenant_id) VALUES (tenant_id)
    ON CONFLICT ON CONSTRAINT move_markers_pkey DO UPDATE SET epoch = 0;

  -- A quoted literal of the id in every row filter (PG15 filters take no parameters).
  SELECT pg_catalog.string_agg(pg_catalog.format('%s WHERE (%I OPERATOR(pg_catalog.=) %L::uuid)', m.relid, m.tenant_column,
                                      tenant_id), ', ' ORDER BY m.relid::pg_catalog.text)
    INTO tables FROM tenancy._move_tables() m;
  -- No TRUNCATE: truncating a shared table on the source must never empty it on the target.
  EXECUTE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s WITH (publish = %L, publish_via_partition_root = true)',
                 pub, tables, 'insert, update, delete');
  PERFORM tenancy._move_widen_identities();
  PERFORM tenancy._move_set_guards(true);
  list := tenancy._move_table_list(tenant_id);
  PERFORM tenancy._audit('tenant_move_started', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'side', 'source', 'source_region', t.data_residency, 'target_region', target_region, 'publication', pub,
    'tables', list, 'by', session_user));
  RETURN pg_catalog.jsonb_build_object('publication', pub, 'slot', pub, 'tenant', pg_catalog.to_jsonb(t),
                                       'tables', list);
END
$$;
COMMENT ON FUNCTION tenancy.move_source_prepare(uuid, text) IS
  'live move, source: publication of the tenant''s rows (row filters), guards, move record; see docs/residency.md';

CREATE OR REPLACE FUNCTION tenancy.move_source_create_slot(tenant_id uuid) RETURNS pg_lsn
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  slot pg_catalog.name;
  lsn pg_catalog.pg_lsn;
BEGIN
  SELECT m.slot_name INTO slot FROM tenancy.tenant_moves m
   WHERE m.tenant_id OPERATOR(pg_catalog.=) move_source_create_slot.tenant_id
     AND m.side OPERATOR(pg_catalog.=) 'source' AND m.phase OPERATOR(pg_catalog.=) 'prepare';
  IF slot IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('tenant "%s" has no move being prepared on this cluster', tenant_id);
  END IF;
  SELECT s.lsn INTO lsn FROM pg_catalog.pg_create_logical_replication_slot(slot, 'pgoutput') s;
  UPDATE tenancy.tenant_moves SET phase = 'copying'
   WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_create_slot.tenant_id;
  PERFORM tenancy._audit('tenant_move_slot_created', tenant_id, NULL,
                         pg_catalog.jsonb_build_object('slot', slot, 'lsn', lsn::pg_catalog.text));
  RETURN lsn;
END
$$;
COMMENT ON FUNCTION tenancy.move_source_create_slot(uuid) IS
  'live move, source: the logical replication slot (call in a transaction of its own, before anything else)';

CREATE OR REPLACE FUNCTION tenancy.move_source_progress(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
  s record;
BEGIN
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) move_source_progress.tenant_id
     AND mv.side OPERATOR(pg_catalog.=) 'source';
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT r.active, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.confirmed_flush_lsn)::pg_catalog.int8 AS lag
    INTO s FROM pg_catalog.pg_replication_slots r WHERE r.slot_name OPERATOR(pg_catalog.=) m.slot_name;
  RETURN pg_catalog.jsonb_build_object('phase', m.phase, 'frozen', m.frozen, 'target_region', m.target_region,
    'slot_active', s.active, 'lag_bytes', s.lag, 'started_at', tenancy._rfc3339(m.started_at),
    'frozen_at', tenancy._rfc3339(m.frozen_at));
END
$$;
COMMENT ON FUNCTION tenancy.move_source_progress(uuid) IS 'live move, source: phase, slot activity and lag in bytes';

CREATE OR REPLACE FUNCTION tenancy.move_source_freeze(tenant_id uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'source');
  e pg_catalog.int8;
BEGIN
  IF m.phase OPERATOR(pg_catalog.<>) ALL (ARRAY['copying', 'catching_up', 'freezing']) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" cannot freeze in phase %s', tenant_id, m.phase);
  END IF;
  UPDATE tenancy.tenant_moves SET frozen = true, phase = 'freezing', frozen_at = pg_catalog.clock_timestamp()
   WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_freeze.tenant_id;
  UPDATE tenancy.move_markers SET epoch = move_markers.epoch OPERATOR(pg_catalog.+) 1
   WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_source_freeze.tenant_id RETURNING epoch INTO e;
  PERFORM tenancy._audit('tenant_move_frozen', tenant_id, NULL, pg_catalog.jsonb_build_object('epoch', e));
  RETURN e;
END
$$;
COMMENT ON FUNCTION tenancy.move_source_freeze(uuid) IS
  'live move, source: refuses the tenant''s writes from now on (55006) and returns the catch-up marker epoch';

CREATE OR REPLACE FUNCTION tenancy.move_source_handover(tenant_id uuid, recipient_key bytea) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'source');
  quota pg_catalog.jsonb := '{}';
  seqs pg_catalog.jsonb := '{}';
  keys pg_catalog.jsonb;
  audit pg_catalog.jsonb;
  metric pg_catalog.text;
  s record;
BEGIN
  IF NOT m.frozen THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" is not frozen', tenant_id),
      HINT = 'Call tenancy.move_source_freeze() first.';
  END IF;
  IF pg_catalog.to_regprocedure('tenancy._quota_state(uuid,text,timestamptz)') IS NOT NULL THEN
    FOREACH metric IN ARRAY ARRAY['users', 'projects', 'api_calls', 'storage_mb', 'ai_requests', 'concurrent_sessions']
    LOOP
      quota := quota OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(metric, (SELECT q.used FROM tenancy._quota_state(tenant_id, metric) q));
    END LOOP;
  END IF;
  FOR s IN SELECT DISTINCT d.objid::pg_catalog.regclass AS seq FROM tenancy._move_tables() t
             JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid
              AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])
             JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) d.objid AND k.relkind OPERATOR(pg_catalog.=) 'S'
  LOOP
    seqs := seqs OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(s.seq::pg_catalog.text, pg_catalog.pg_sequence_last_value(s.seq));
  END LOOP;
  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'version', k.version, 'created_at', k.created_at, 'destroyed_at', k.destroyed_at,
           'sealed', CASE WHEN k.wrapped_key IS NOT NULL THEN
                       pg_catalog.encode(tenancy._move_seal_key(k.tenant_id, k.version, k.wrapped_key, recipient_key),
                                         'base64') END) ORDER BY k.version), '[]')
    INTO keys FROM tenancy.tenant_keys k WHERE k.tenant_id OPERATOR(pg_catalog.=) move_source_handover.tenant_id;
  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a) ORDER BY a.id), '[]') INTO audit
    FROM tenancy.audit_log a WHERE a.tenant_id OPERATOR(pg_catalog.=) move_source_handover.tenant_id;
  PERFORM tenancy._audit('tenant_move_handover', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'keys', pg_catalog.jsonb_array_length(keys), 'audit_events', pg_catalog.jsonb_array_length(audit),
    'quota', quota, 'sequences', seqs));
  RETURN pg_catalog.jsonb_build_object(
    'tenant', (SELECT pg_catalog.to_jsonb(t) FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) move_source_handover.tenant_id),
    'quota', quota, 'sequences', seqs, 'keys', keys, 'audit', audit);
END
$$;
COMMENT ON FUNCTION tenancy.move_source_handover(uuid, bytea) IS
  'live move, source (frozen): registry row, quota usage, sequence values, audit events and keys sealed to the target';

CREATE OR REPLACE FUNCTION tenancy.move_source_finish(tenant_id uuid, outcome text, subscription_oid oid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
  slot record;
  waited pg_catalog.int4 := 0;
BEGIN
  IF tenant_id IS NULL OR outcome IS NULL OR outcome OPERATOR(pg_catalog.<>) ALL (ARRAY['switched', 'rolled_back']) THEN
    PERFORM tenancy._invalid_input('outcome must be ''switched'' or ''rolled_back''');
  END IF;
  PERFORM tenancy._move_unguard_last(tenant_id, 'source');
  m := tenancy._move_record(tenant_id, 'source');
  IF outcome OPERATOR(pg_catalog.=) 'switched' AND NOT m.frozen THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" was never frozen; it cannot have switched', tenant_id);
  END IF;
  EXECUTE pg_catalog.format('DROP PUBLICATION IF EXISTS %I', m.publication_name);
  -- The slot (and tablesync slots of the target's subscription) once their walsenders are gone: the target drops
  -- its subscription first; a target that died leaves them inactive.
  FOR slot IN SELECT r.slot_name, r.active_pid FROM pg_catalog.pg_replication_slots r
               WHERE r.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
                 AND (r.slot_name OPERATOR(pg_catalog.=) m.slot_name
                      OR (subscription_oid IS NOT NULL
                          AND r.slot_name::pg_catalog.text OPERATOR(pg_catalog.~~) pg_catalog.format('pg\_%s\_sync\_%%', subscription_oid)))
  LOOP
    WHILE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots r WHERE r.slot_name OPERATOR(pg_catalog.=) slot.slot_name
                     AND r.active) AND waited OPERATOR(pg_catalog.<) 100 LOOP
      PERFORM pg_catalog.pg_sleep(0.05);
      waited := waited OPERATOR(pg_catalog.+) 1;
    END LOOP;
    -- Still streaming after 5 s: the move is over either way, end that walsender.
    PERFORM pg_catalog.pg_terminate_backend(r.active_pid, 5000) FROM pg_catalog.pg_replication_slots r
      WHERE r.slot_name OPERATOR(pg_catalog.=) slot.slot_name AND r.active;
    PERFORM pg_catalog.pg_drop_replication_slot(slot.slot_name);
  END LOOP;
  DELETE FROM tenancy.tenant_moves WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_finish.tenant_id;
  DELETE FROM tenancy.move_markers WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_source_finish.tenant_id;
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenant_moves mv WHERE mv.side OPERATOR(pg_catalog.=) 'source') THEN
    PERFORM tenancy._move_restore_identities();
  END IF;
  PERFORM tenancy._move_lock_release(tenant_id);
  IF outcome OPERATOR(pg_catalog.=) 'switched' THEN
    PERFORM tenancy._audit('tenant_moved_out', tenant_id, NULL, pg_catalog.jsonb_build_object(
      'target_region', m.target_region, 'frozen_at', tenancy._rfc3339(m.frozen_at), 'by', session_user));
    PERFORM tenancy.delete_tenant(tenant_id, erase => true);
  ELSE
    PERFORM tenancy._audit('tenant_move_rolled_back', tenant_id, NULL, pg_catalog.jsonb_build_object(
      'side', 'source', 'target_region', m.target_region, 'phase', m.phase, 'by', session_user));
  END IF;
END
$$;
COMMENT ON FUNCTION tenancy.move_source_finish(uuid, text, oid) IS
  'live move, source: ends it (''switched'': erase the tenant here; ''rolled_back'': writes allowed again)';

CREATE OR REPLACE FUNCTION tenancy.move_target_prepare(tenant jsonb, tables jsonb, target_region text) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.tenants;
  e pg_catalog.jsonb;
  tbl pg_catalog.regclass;
  region pg_catalog.text := NULLIF(pg_catalog.current_setting('tenancy.region', true), '');
BEGIN
  r := pg_catalog.jsonb_populate_record(NULL::tenancy.tenants, tenant);
  IF r.id IS NULL OR r.slug IS NULL THEN
    PERFORM tenancy._invalid_input('invalid tenant row for a move', 'The row must carry at least id and slug.');
  END IF;
  IF region IS NOT NULL AND region OPERATOR(pg_catalog.<>) target_region THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('this cluster serves region "%s", not "%s"', region, target_region));
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) r.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = pg_catalog.format('tenant "%s" already exists', r.id);
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) r.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use', MESSAGE = pg_catalog.format('tenant "%s" is already being moved', r.id),
      HINT = 'Remove the leftovers of the earlier attempt with tenancy.move_target_abort().';
  END IF;
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(tables) x LOOP
    tbl := pg_catalog.to_regclass(e OPERATOR(pg_catalog.->>) 'table');
    IF tbl IS NULL THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" of the tenant does not exist in this database', e OPERATOR(pg_catalog.->>) 'table'),
        NULL, 'Create the application''s tables (and isolate them) on the target before moving a tenant.');
    END IF;
    IF e OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'isolated' AND NOT EXISTS (
         SELECT 1 FROM tenancy.isolation_config ic WHERE ic.relid OPERATOR(pg_catalog.=) tbl
            AND ic.tenant_column::pg_catalog.text OPERATOR(pg_catalog.=) (e OPERATOR(pg_catalog.->>) 'tenant_column')) THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" is not isolated on column "%s" in this database', tbl,
                                            e OPERATOR(pg_catalog.->>) 'tenant_column'), NULL,
        pg_catalog.format('Run SELECT tenancy.enable_isolation(%L, %L) first.', tbl::pg_catalog.text, e OPERATOR(pg_catalog.->>) 'tenant_column'));
    END IF;
  END LOOP;

  -- A parent that is not here is dropped (the tenant becomes a root), as import_tenant does.
  INSERT INTO tenancy.tenants (id, organization_name, display_name, slug, status, plan, data_residency,
                               encryption_key_id, configuration, parent_tenant_id, created_at, updated_at, trial_ends_at)
  VALUES (r.id, r.organization_name, r.display_name, r.slug, r.status, r.plan, target_region::tenancy.data_residency,
          r.encryption_key_id, r.configuration,
          (SELECT p.id FROM tenancy.tenants p WHERE p.id OPERATOR(pg_catalog.=) r.parent_tenant_id),
          r.created_at, r.updated_at, r.trial_ends_at);
  -- After the row: the guard (installed next) refuses writes of a frozen tenant, ours included.
  INSERT INTO tenancy.tenant_moves (tenant_id, side, source_region, target_region, phase, frozen, subscription_name)
  VALUES (r.id, 'target', r.data_residency::pg_catalog.text, target_region, 'copying', true, tenancy._move_name(r.id));
  PERFORM tenancy._move_set_guards(true);
  PERFORM tenancy._audit('tenant_move_started', r.id, NULL, pg_catalog.jsonb_build_object(
    'side', 'target', 'source_region', r.data_residency, 'target_region', target_region, 'by', session_user));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_prepare(jsonb, jsonb, text) IS
  'live move, target: checks the tables, creates the tenant row (this region) frozen until the switch';

CREATE OR REPLACE FUNCTION tenancy.move_target_subscribe(tenant_id uuid) RETURNS oid
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
  sub pg_catalog.name := tenancy._move_name(tenant_id);
  source_conninfo pg_catalog.text;
  subid pg_catalog.oid;
  stray pg_catalog.text;
BEGIN
  IF m.phase OPERATOR(pg_catalog.<>) 'copying' THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" cannot subscribe in phase %s', tenant_id, m.phase);
  END IF;
  stray := tenancy._move_apply_hazards();
  IF stray IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = pg_catalog.format('the tables of the move of tenant "%s" would run code of other roles as a superuser',
                                  tenant_id),
      DETAIL = pg_catalog.format('The subscription writes them as its owner, a superuser (PostgreSQL 15): %s.', stray),
      HINT = 'Disable those triggers for replica mode (ALTER TABLE ... ENABLE TRIGGER), or have a superuser own '
             'the functions, before moving a tenant here.';
  END IF;
  SELECT c.conninfo INTO source_conninfo FROM tenancy.region_connections c
   WHERE c.region OPERATOR(pg_catalog.=) m.source_region;
  IF source_conninfo IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('region "%s" has no registered connection', m.source_region),
      DETAIL = 'A move into this cluster subscribes to the source region''s cluster with the connection string a '
               'superuser registered for that region in tenancy.region_connections.',
      HINT = pg_catalog.format('As a superuser: INSERT INTO tenancy.region_connections (region, conninfo) VALUES '
                               '(%L, ''host=... dbname=... user=...'').', m.source_region);
  END IF;
  EXECUTE pg_catalog.format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (create_slot = false,'
                            ' slot_name = %L, copy_data = true, enabled = false, disable_on_error = true)',
                            sub, source_conninfo, sub, sub);
  SELECT s.oid INTO subid FROM pg_catalog.pg_subscription s WHERE s.subname OPERATOR(pg_catalog.=) sub
     AND s.subdbid OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                            WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
  SELECT pg_catalog.string_agg(r.srrelid::pg_catalog.regclass::pg_catalog.text, ', '
                               ORDER BY r.srrelid::pg_catalog.regclass::pg_catalog.text)
    INTO stray FROM pg_catalog.pg_subscription_rel r
   WHERE r.srsubid OPERATOR(pg_catalog.=) subid
     AND NOT r.srrelid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT t.relid::pg_catalog.oid FROM tenancy._move_tables() t));
  IF stray IS NOT NULL THEN
    -- Raised in the transaction that created it: the subscription is gone with it, nothing was applied.
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = pg_catalog.format('the publication of the move of tenant "%s" lists tables that are not the move''s',
                                  tenant_id),
      DETAIL = pg_catalog.format('Tables here that it would write: %s.', stray),
      HINT = 'A move replicates only the isolated tables and the per-tenant registry tables '
             '(tenancy.move_source_prepare publishes exactly those).';
  END IF;
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I ENABLE', sub);
  PERFORM tenancy._audit('tenant_move_subscribed', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'subscription', sub, 'source_region', m.source_region, 'by', session_user));
  RETURN subid;
END
$$;
COMMENT ON FUNCTION tenancy.move_target_subscribe(uuid) IS
  'live move, target: subscribes to the source region''s publication (its registered connection; initial copy, '
  'then streaming), only the move''s tables; returns its oid';

CREATE OR REPLACE FUNCTION tenancy.move_target_subscribe(tenant_id uuid, source_conninfo text) RETURNS oid
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tenancy.region_connections c WHERE c.region OPERATOR(pg_catalog.=) m.source_region
                    AND c.conninfo OPERATOR(pg_catalog.=) source_conninfo) THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = pg_catalog.format('the connection string is not the one registered for region "%s"', m.source_region),
      DETAIL = 'A move subscribes only with the connection a superuser registered in tenancy.region_connections.',
      HINT = 'Call tenancy.move_target_subscribe(tenant_id), which uses the registered connection.';
  END IF;
  RETURN tenancy.move_target_subscribe(tenant_id);
END
$$;
COMMENT ON FUNCTION tenancy.move_target_subscribe(uuid, text) IS
  'deprecated: move_target_subscribe(tenant_id); the connection string must be the source region''s registered one';

CREATE OR REPLACE FUNCTION tenancy.move_target_progress(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
  sub record;
  t record;
  n pg_catalog.int8;
  tables pg_catalog.jsonb := '[]';
  copied pg_catalog.int8 := 0;
  ready pg_catalog.bool := true;
BEGIN
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) move_target_progress.tenant_id
     AND mv.side OPERATOR(pg_catalog.=) 'target';
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT s.oid, s.subenabled INTO sub FROM pg_catalog.pg_subscription s
   WHERE s.subname OPERATOR(pg_catalog.=) m.subscription_name;
  FOR t IN SELECT x.relid, x.tenant_column,
                  (SELECT r.srsubstate FROM pg_catalog.pg_subscription_rel r
                    WHERE r.srsubid OPERATOR(pg_catalog.=) sub.oid AND r.srrelid OPERATOR(pg_catalog.=) x.relid::pg_catalog.oid) AS state
             FROM tenancy._move_tables() x ORDER BY x.relid::pg_catalog.text LOOP
    -- counted with superuser rights: planning the count must run no code of the owner's, nor may a
    -- tenant column of the owner's type bring its cast to uuid into the comparison
    PERFORM tenancy._require_plain_read(t.relid);
    IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) t.relid AND a.attname OPERATOR(pg_catalog.=) t.tenant_column
           AND NOT a.attisdropped) IS DISTINCT FROM 'pg_catalog.uuid'::pg_catalog.regtype THEN
      RAISE EXCEPTION 'cannot move % of a tenant: it is no longer a table with a uuid column "%"', t.relid,
        t.tenant_column USING ERRCODE = '42804',
        HINT = 'Restore the table and its tenant column, or disable isolation of it with tenancy.disable_isolation().';
    END IF;
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s x WHERE x.%I OPERATOR(pg_catalog.=) $1', t.relid,
                   t.tenant_column) INTO n USING tenant_id;
    tables := tables OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'table', t.relid::pg_catalog.text, 'state', t.state, 'rows', n));
    copied := copied OPERATOR(pg_catalog.+) n;
    ready := ready AND coalesce(t.state OPERATOR(pg_catalog.=) 'r', false);
  END LOOP;
  RETURN pg_catalog.jsonb_build_object(
    'phase', m.phase, 'subscribed', sub.oid IS NOT NULL, 'subscription_oid', sub.oid,
    'subscription_enabled', coalesce(sub.subenabled, false), 'all_ready', ready AND sub.oid IS NOT NULL,
    'rows_copied', copied, 'tables', tables,
    'marker_epoch', (SELECT k.epoch FROM tenancy.move_markers k WHERE k.tenant_id OPERATOR(pg_catalog.=) move_target_progress.tenant_id),
    'received_lsn', (SELECT st.latest_end_lsn::pg_catalog.text FROM pg_catalog.pg_stat_subscription st
                      WHERE st.subid OPERATOR(pg_catalog.=) sub.oid AND st.relid IS NULL));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_progress(uuid) IS
  'live move, target: per-table sync state and rows copied, marker epoch, subscription health';

CREATE OR REPLACE FUNCTION tenancy.move_target_caught_up(tenant_id uuid, epoch bigint) RETURNS boolean
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT k.epoch OPERATOR(pg_catalog.>=) move_target_caught_up.epoch FROM tenancy.move_markers k
                    WHERE k.tenant_id OPERATOR(pg_catalog.=) move_target_caught_up.tenant_id), false)
     AND EXISTS (SELECT 1 FROM tenancy.tenant_moves m JOIN pg_catalog.pg_subscription s
                   ON s.subname OPERATOR(pg_catalog.=) m.subscription_name
                  WHERE m.tenant_id OPERATOR(pg_catalog.=) move_target_caught_up.tenant_id
                    AND m.side OPERATOR(pg_catalog.=) 'target'
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel r
                                     WHERE r.srsubid OPERATOR(pg_catalog.=) s.oid
                                       AND r.srsubstate OPERATOR(pg_catalog.<>) 'r'))
$$;
COMMENT ON FUNCTION tenancy.move_target_caught_up(uuid, bigint) IS
  'live move, target: true once the freeze''s marker epoch is applied and every table is ready';

CREATE OR REPLACE FUNCTION tenancy.move_target_transport_key(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
  nonce pg_catalog.bytea := pg_catalog.uuid_send(pg_catalog.gen_random_uuid());
BEGIN
  RETURN pg_catalog.jsonb_build_object('nonce', pg_catalog.encode(nonce, 'hex'),
                                       'public_key', pg_catalog.encode(tenancy._move_transport_key(nonce), 'hex'));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_transport_key(uuid) IS
  'live move, target: a recipient public key (and its nonce) for the source to seal the tenant''s data keys to';

CREATE OR REPLACE FUNCTION tenancy._move_drop_subscription(sub name) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname OPERATOR(pg_catalog.=) sub) THEN
    RETURN false;
  END IF;
  -- Without a slot name DROP SUBSCRIPTION runs inside a transaction and never needs the source: the source drops
  -- its own slot (move_source_finish).
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', sub);
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', sub);
  EXECUTE pg_catalog.format('DROP SUBSCRIPTION %I', sub);
  RETURN true;
END
$$;
COMMENT ON FUNCTION tenancy._move_drop_subscription(name) IS 'internal: drops a move''s subscription, leaving its slot';

CREATE OR REPLACE FUNCTION tenancy.move_target_switch(tenant_id uuid, epoch bigint, handover jsonb, nonce text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
  k pg_catalog.jsonb;
  src tenancy.tenants;
  fp pg_catalog.bytea;
  stored pg_catalog.bytea;
  q record;
  s record;
  ev pg_catalog.jsonb;
  nkeys pg_catalog.int4 := 0;
  nevents pg_catalog.int4 := 0;
BEGIN
  IF NOT tenancy.move_target_caught_up(tenant_id, epoch) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" has not caught up with the freeze', tenant_id),
      DETAIL = pg_catalog.format('Marker epoch %s has not been applied here, or a table is not ready yet.', epoch),
      HINT = 'Wait until tenancy.move_target_caught_up() is true.';
  END IF;
  -- Stopped, not dropped: DROP SUBSCRIPTION waits for its workers, and the freeze lasts until this commits.
  -- Disabled it applies nothing more, and the source drops its slot before it deletes the tenant's rows.
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', m.subscription_name);
  DELETE FROM tenancy.tenant_moves WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;
  DELETE FROM tenancy.move_markers WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;

  -- Keys: wrapped by the source's master key there, sealed to our recipient key in transit, wrapped by ours here.
  IF pg_catalog.jsonb_array_length(handover OPERATOR(pg_catalog.->) 'keys') OPERATOR(pg_catalog.>) 0 THEN
    fp := tenancy._move_master_fingerprint();
    SELECT f.fingerprint INTO stored FROM tenancy.master_key_fingerprint f;
    IF stored IS NULL THEN
      INSERT INTO tenancy.master_key_fingerprint (fingerprint) VALUES (fp);
    ELSIF stored OPERATOR(pg_catalog.<>) fp THEN
      RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
        MESSAGE = 'the master key of this cluster does not match tenancy.master_key_fingerprint',
        HINT = 'Fix tenancy.master_key_file before moving tenants here.';
    END IF;
  END IF;
  DELETE FROM tenancy.tenant_keys tk WHERE tk.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;
  FOR k IN SELECT x.value FROM pg_catalog.jsonb_array_elements(handover OPERATOR(pg_catalog.->) 'keys') x LOOP
    INSERT INTO tenancy.tenant_keys (tenant_id, version, wrapped_key, created_at, destroyed_at)
    VALUES (tenant_id, (k OPERATOR(pg_catalog.->>) 'version')::pg_catalog.int4,
            CASE WHEN k OPERATOR(pg_catalog.->>) 'sealed' IS NOT NULL THEN
              tenancy._move_open_key(tenant_id, (k OPERATOR(pg_catalog.->>) 'version')::pg_catalog.int4, pg_catalog.decode(k OPERATOR(pg_catalog.->>) 'sealed', 'base64'),
                                     pg_catalog.decode(nonce, 'hex')) END,
            (k OPERATOR(pg_catalog.->>) 'created_at')::pg_catalog.timestamptz, (k OPERATOR(pg_catalog.->>) 'destroyed_at')::pg_catalog.timestamptz);
    nkeys := nkeys OPERATOR(pg_catalog.+) 1;
  END LOOP;

  src := pg_catalog.jsonb_populate_record(NULL::tenancy.tenants, handover OPERATOR(pg_catalog.->) 'tenant');
  UPDATE tenancy.tenants t SET organization_name = src.organization_name, display_name = src.display_name,
         slug = src.slug, status = src.status, plan = src.plan, encryption_key_id = src.encryption_key_id,
         configuration = src.configuration, updated_at = src.updated_at, trial_ends_at = src.trial_ends_at
   WHERE t.id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;

  IF pg_catalog.to_regprocedure('tenancy._quota_set_count(uuid,text,bigint)') IS NOT NULL THEN
    FOR q IN SELECT x.key, x.value FROM pg_catalog.jsonb_each(handover OPERATOR(pg_catalog.->) 'quota') x
              WHERE pg_catalog.jsonb_typeof(x.value) OPERATOR(pg_catalog.=) 'number' LOOP
      PERFORM tenancy._quota_set_count(tenant_id, q.key, (q.value OPERATOR(pg_catalog.#>>) '{}')::pg_catalog.int8);
    END LOOP;
  END IF;
  -- Sequences are shared by every tenant of a table: never moved backwards.
  FOR s IN SELECT pg_catalog.to_regclass(x.key) AS seq, (x.value OPERATOR(pg_catalog.#>>) '{}')::pg_catalog.int8 AS v
             FROM pg_catalog.jsonb_each(handover OPERATOR(pg_catalog.->) 'sequences') x
            WHERE pg_catalog.jsonb_typeof(x.value) OPERATOR(pg_catalog.=) 'number' LOOP
    CONTINUE WHEN s.seq IS NULL;
    IF s.v OPERATOR(pg_catalog.>) coalesce(pg_catalog.pg_sequence_last_value(s.seq), 0) THEN
      PERFORM pg_catalog.setval(s.seq, s.v);
    END IF;
  END LOOP;
  -- History is re-appended to this cluster's own chain, each event carrying the original with its hashes.
  FOR ev IN SELECT x.value FROM pg_catalog.jsonb_array_elements(handover OPERATOR(pg_catalog.->) 'audit') WITH ORDINALITY x(value, i)
             ORDER BY x.i LOOP
    PERFORM tenancy._audit('audit_event_imported', tenant_id, NULL, ev);
    nevents := nevents OPERATOR(pg_catalog.+) 1;
  END LOOP;

  PERFORM tenancy._audit('tenant_moved_in', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'source_region', m.source_region, 'epoch', epoch, 'keys', nkeys, 'audit_events', nevents, 'by', session_user));
  RETURN pg_catalog.jsonb_build_object('keys', nkeys, 'audit_events', nevents);
END
$$;
COMMENT ON FUNCTION tenancy.move_target_switch(uuid, bigint, jsonb, text) IS
  'live move, target (source frozen, caught up): re-wrapped keys, registry row, quota, sequences, audit; tenant live';

CREATE OR REPLACE FUNCTION tenancy.move_target_finish(tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  dropped pg_catalog.bool;
BEGIN
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_target_finish.tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" has not switched yet', tenant_id),
      HINT = 'Call tenancy.move_target_switch() first, or tenancy.move_target_abort() to give up.';
  END IF;
  dropped := tenancy._move_drop_subscription(tenancy._move_name(tenant_id));
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenant_moves) THEN
    PERFORM tenancy._move_set_guards(false);
  END IF;
  RETURN dropped;
END
$$;
COMMENT ON FUNCTION tenancy.move_target_finish(uuid) IS
  'live move, target (after the switch): drops the disabled subscription and, with the last move, the guards';

CREATE OR REPLACE FUNCTION tenancy.move_target_abort(tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
BEGIN
  PERFORM tenancy._move_unguard_last(tenant_id, 'target');
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) move_target_abort.tenant_id
     AND mv.side OPERATOR(pg_catalog.=) 'target' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM tenancy._move_drop_subscription(m.subscription_name);
  DELETE FROM tenancy.tenant_moves WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_target_abort.tenant_id;
  DELETE FROM tenancy.move_markers WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_target_abort.tenant_id;
  PERFORM tenancy._audit('tenant_move_rolled_back', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'side', 'target', 'source_region', m.source_region, 'by', session_user));
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) move_target_abort.tenant_id) THEN
    PERFORM tenancy.delete_tenant(tenant_id, erase => true);
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION tenancy.move_target_abort(uuid) IS
  'live move, target: removes a failed move''s subscription and copied rows (never a tenant living here)';

REVOKE ALL ON FUNCTION tenancy.move_target_subscribe(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.move_target_subscribe(uuid) TO tenancy_admin;

-- importmove (3): issue #15 (importmove): the owner-run functions of 85_export.sql qualify every type, operator and
-- function (pg_catalog.*), as the SECURITY DEFINER ones of 88_move.sql do.

COMMENT ON FUNCTION tenancy._export_select(oid, name) IS 'internal: the query reading a table''s rows of one tenant';

CREATE OR REPLACE FUNCTION tenancy._export_plan()
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

CREATE OR REPLACE FUNCTION tenancy._export_head(tenant uuid) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION tenancy._export_summary(manifest jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object(
    'source_tenant_id', manifest OPERATOR(pg_catalog.->) 'tenant_id', 'slug', manifest OPERATOR(pg_catalog.->) 'slug',
    'extension_version', manifest OPERATOR(pg_catalog.->) 'extension_version',
    'rows', (SELECT coalesce(pg_catalog.jsonb_object_agg(e OPERATOR(pg_catalog.->>) 'table', e OPERATOR(pg_catalog.->) 'rows'), '{}')
               FROM pg_catalog.jsonb_array_elements(manifest OPERATOR(pg_catalog.->) 'tables') e))
$$;
COMMENT ON FUNCTION tenancy._export_summary(jsonb) IS 'internal: what the audit event of an export or import records';

CREATE OR REPLACE FUNCTION tenancy._import_check_manifest(manifest jsonb, version integer) RETURNS void
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

COMMENT ON FUNCTION tenancy._import_staged(jsonb, regclass, uuid, text) IS
  'internal (import_tenant, import_tenant_copied as the extension owner): verifies and restores staged export rows';

CREATE OR REPLACE FUNCTION tenancy._import_field_count(fields text[], ncols integer, table_name text) RETURNS boolean
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

COMMENT ON FUNCTION tenancy._import_tenant(jsonb, uuid) IS
  'internal (import_tenant as the extension owner): stages a document''s rows and imports them';

CREATE OR REPLACE FUNCTION tenancy.import_tables(manifest jsonb)
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

-- ==== superuser reads (issue #15, red team): what tenancy reads with superuser rights runs no code of a table's
-- owner. Planning a read folds constant calls in index, partition key, CHECK and statistics expressions in the
-- planner's identity (tenancy._require_plain_read refuses those of non-superusers, new in 36_plain_read.sql); the
-- import no longer converts staged values to the column types as the superuser (its unique-key pre-check cast them,
-- running the owner's domain checks and casts): a kept key that is taken fails the owner's insert instead.

CREATE OR REPLACE FUNCTION tenancy.reconcile_quota(metric text DEFAULT NULL)
RETURNS TABLE (tenant_id uuid, metric_name text, previous bigint, counted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m text;
  tracked record;
  counts jsonb;
  r record;
BEGIN
  IF metric IS NOT NULL AND NOT metric OPERATOR(pg_catalog.=) ANY (ARRAY['users', 'projects']) THEN
    PERFORM tenancy._invalid_input(format('cannot reconcile metric "%s"', metric),
      'Only the row counts users and projects are recounted.');
  END IF;
  -- tables dropped since they were tracked are forgotten
  DELETE FROM tenancy.quota_tracked_tables q
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) q.table_name);
  FOREACH m IN ARRAY coalesce(ARRAY[metric], ARRAY['users', 'projects']) LOOP
    counts := '{}';
    FOR tracked IN SELECT * FROM tenancy.quota_tracked_tables q WHERE q.metric OPERATOR(pg_catalog.=) m
                    ORDER BY q.table_name::oid LOOP
      -- Read and grouped with superuser rights: only a table whose tenant column is exactly uuid (a type of the
      -- owner's could bring a cast function into r.t::text), as _quota_count_rows requires.
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a
                         ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                      WHERE c.oid OPERATOR(pg_catalog.=) tracked.table_name
                        AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
                        AND a.attname OPERATOR(pg_catalog.=) tracked.tenant_column AND NOT a.attisdropped
                        AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype) THEN
        RAISE EXCEPTION 'tracked table % no longer has a uuid column "%"', tracked.table_name, tracked.tenant_column
          USING ERRCODE = '42804',
                HINT = 'Restore the table and its tenant column, or run tenancy.track_quota() on a table that has one.';
      END IF;
      EXECUTE format('LOCK TABLE %s IN SHARE MODE', tracked.table_name);
      -- Read with superuser rights: planning the count must run no code of the table's owner.
      PERFORM tenancy._require_plain_read(tracked.table_name);
      FOR r IN EXECUTE format('SELECT %I AS t, pg_catalog.count(*) AS n FROM %s WHERE %I IS NOT NULL%s GROUP BY 1',
                              tracked.tenant_column, tracked.table_name, tracked.tenant_column,
                              CASE WHEN tracked.status_column IS NULL THEN ''
                                   ELSE format(' AND %I::text OPERATOR(pg_catalog.<>) ''disabled''',
                                               tracked.status_column) END) LOOP
        counts := counts OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(r.t::text,
                    coalesce((counts ->> r.t::text)::bigint, 0) OPERATOR(pg_catalog.+) r.n);
      END LOOP;
    END LOOP;
    FOR r IN SELECT t.id, coalesce((counts ->> t.id::text)::bigint, 0) AS n FROM tenancy.tenants t ORDER BY t.id LOOP
      tenant_id := r.id;
      metric_name := m;
      previous := (tenancy._quota_state(r.id, m)).used;
      counted := r.n;
      IF previous OPERATOR(pg_catalog.<>) counted THEN
        PERFORM tenancy._quota_set_count(r.id, m, r.n);
        RETURN NEXT;
      END IF;
    END LOOP;
  END LOOP;
END
$$;


-- ==== quota recounts (issue #15, red team): _quota_register_tracked, SECURITY DEFINER and granted to tenancy_admin,
-- recorded any relation and column, and reconcile_quota cast that column to text as the superuser (a cast function
-- of the caller's own type ran with superuser rights). Both now require a table with a uuid tenant column.

CREATE OR REPLACE FUNCTION tenancy._quota_register_tracked(tbl regclass, metric text, tenant_column name) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Callable by tenancy_admin directly, and it runs as the superuser: only what track_quota has just prepared is
  -- recorded (a table or partitioned table with a uuid tenant column and the counting trigger, which only the
  -- table's owner could create), never a view or a column of the caller's own type (whose cast to text the recount
  -- would run with superuser rights).
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a
                     ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                  WHERE c.oid OPERATOR(pg_catalog.=) tbl
                    AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
                    AND a.attname OPERATOR(pg_catalog.=) tenant_column AND a.attnum OPERATOR(pg_catalog.>) 0
                    AND NOT a.attisdropped AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype)
     OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                     WHERE g.tgrelid OPERATOR(pg_catalog.=) tbl
                       AND g.tgname OPERATOR(pg_catalog.=) 'tenancy_quota_count'
                       AND g.tgfoid OPERATOR(pg_catalog.=) 'tenancy._quota_track()'::pg_catalog.regprocedure) THEN
    RAISE EXCEPTION 'table % is not prepared for row counting on column "%"', tbl, tenant_column
      USING ERRCODE = '42501', HINT = 'Use tenancy.track_quota().';
  END IF;
  INSERT INTO tenancy.quota_tracked_tables AS q (table_name, metric, tenant_column)
  VALUES (tbl, metric, tenant_column)
  ON CONFLICT (table_name) DO UPDATE SET metric = EXCLUDED.metric, tenant_column = EXCLUDED.tenant_column;
  PERFORM tenancy.reconcile_quota(metric);
END
$$;

-- importmove (4): issue #15 (importmove): a move's subscription applies rows as a superuser (PostgreSQL 15), so
-- move_target_subscribe refuses tables on which that would run code of other roles (tenancy._move_apply_hazards).

CREATE OR REPLACE FUNCTION tenancy._move_apply_hazards() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE rels AS (
    SELECT DISTINCT p.rel FROM tenancy._move_tables() t,
           LATERAL (SELECT t.relid::pg_catalog.oid AS rel
                    UNION SELECT pt.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(t.relid) pt) p),
  types AS (
    SELECT a.atttypid AS typ FROM pg_catalog.pg_attribute a JOIN rels r ON a.attrelid OPERATOR(pg_catalog.=) r.rel
     WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
    UNION
    SELECT u.typ FROM types x JOIN pg_catalog.pg_type y ON y.oid OPERATOR(pg_catalog.=) x.typ,
           LATERAL (VALUES (y.typbasetype), (y.typelem)) u(typ)
     WHERE u.typ OPERATOR(pg_catalog.<>) 0::pg_catalog.oid),
  objs (classid, objid, what) AS (
    SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid,
           pg_catalog.format('trigger %I on %s', g.tgname, g.tgrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_trigger g JOIN rels r ON g.tgrelid OPERATOR(pg_catalog.=) r.rel
     WHERE g.tgenabled OPERATOR(pg_catalog.=) ANY (ARRAY['A', 'R']::"char"[])
    UNION ALL
    SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid,
           pg_catalog.format('default of column %I of %s', a.attname, d.adrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_attrdef d JOIN rels r ON d.adrelid OPERATOR(pg_catalog.=) r.rel
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.adrelid
                                    AND a.attnum OPERATOR(pg_catalog.=) d.adnum
    UNION ALL
    SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, c.oid,
           pg_catalog.format('constraint %I on %s', c.conname, c.conrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_constraint c JOIN rels r ON c.conrelid OPERATOR(pg_catalog.=) r.rel
    UNION ALL
    SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, c.oid,
           pg_catalog.format('constraint %I of type %s', c.conname, c.contypid::pg_catalog.regtype)
      FROM pg_catalog.pg_constraint c JOIN types x ON c.contypid OPERATOR(pg_catalog.=) x.typ
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid,
           pg_catalog.format('index %s', i.indexrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_index i JOIN rels r ON i.indrelid OPERATOR(pg_catalog.=) r.rel
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, r.rel,
           pg_catalog.format('partition key of %s', r.rel::pg_catalog.regclass)
      FROM rels r),
  fns AS (
    SELECT o.what, coalesce(op.oprcode::pg_catalog.oid, d.refobjid) AS fn
      FROM objs o JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid
                                             AND d.objid OPERATOR(pg_catalog.=) o.objid
      LEFT JOIN pg_catalog.pg_operator op
             ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
            AND op.oid OPERATOR(pg_catalog.=) d.refobjid
     WHERE d.refclassid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc', 'pg_catalog.pg_operator']::pg_catalog.regclass[]))
  SELECT pg_catalog.string_agg(DISTINCT pg_catalog.format('%s (function %s)', f.what, f.fn::pg_catalog.regprocedure),
                               ', ')
    FROM fns f JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) f.fn
    JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) p.proowner
   WHERE NOT o.rolsuper AND p.pronamespace OPERATOR(pg_catalog.<>) 'tenancy'::pg_catalog.regnamespace
$$;
COMMENT ON FUNCTION tenancy._move_apply_hazards() IS
  'internal: code of others that a move''s subscription would run as the superuser on the move''s tables, or NULL';

COMMENT ON FUNCTION tenancy.move_target_subscribe(uuid) IS
  'live move, target: subscribes to the source region''s publication (its registered connection; initial copy, '
  'then streaming), only the move''s tables; returns its oid';

REVOKE ALL ON FUNCTION tenancy._move_apply_hazards() FROM PUBLIC;

-- ==== tenancyd under attack (issue #16): update_tenant caps configuration at 64 KiB (54000) and audits what
-- changed (tenancy._jsonb_diff) instead of two whole rows.
-- The JSON merge patch (RFC 7396) that turns from_doc into to_doc, smallest form: keys added or changed with their
-- new value (objects compared key by key), keys removed as null. update_tenant audits a change as two of these
-- (before: the old values of what changed; after: the new ones), never two whole rows (issue #16: a 12 MB
-- configuration wrote ~1.7 MB per PATCH into the append-only log).
CREATE FUNCTION tenancy._jsonb_diff(from_doc jsonb, to_doc jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  result jsonb := '{}'::pg_catalog.jsonb;
  k pg_catalog.text;
  v pg_catalog.jsonb;
  old_v pg_catalog.jsonb;
BEGIN
  IF pg_catalog.jsonb_typeof(from_doc) OPERATOR(pg_catalog.<>) 'object'
     OR pg_catalog.jsonb_typeof(to_doc) OPERATOR(pg_catalog.<>) 'object' THEN
    RETURN to_doc;
  END IF;
  FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(to_doc) e LOOP
    old_v := from_doc OPERATOR(pg_catalog.->) k;
    IF old_v IS NULL THEN
      result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(k, v);
    ELSIF old_v OPERATOR(pg_catalog.<>) v THEN
      IF pg_catalog.jsonb_typeof(old_v) OPERATOR(pg_catalog.=) 'object'
         AND pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'object' THEN
        v := tenancy._jsonb_diff(old_v, v);
      END IF;
      result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(k, v);
    END IF;
  END LOOP;
  FOR k IN SELECT e.key FROM pg_catalog.jsonb_each(from_doc) e
            WHERE NOT (to_doc OPERATOR(pg_catalog.?) e.key) LOOP
    result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(k, NULL::pg_catalog.jsonb);
  END LOOP;
  RETURN result;
END
$$;
COMMENT ON FUNCTION tenancy._jsonb_diff(jsonb, jsonb) IS
  'internal: the smallest merge patch from one document to another (what an audit event of a change records)';
REVOKE ALL ON FUNCTION tenancy._jsonb_diff(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._jsonb_diff(jsonb, jsonb) TO tenancy_admin;

CREATE OR REPLACE FUNCTION tenancy.update_tenant(id uuid, changes jsonb) RETURNS tenancy.tenants
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  old_row tenancy.tenants;
  t tenancy.tenants;
  k text;
  v jsonb;
  new_parent uuid;
BEGIN
  IF changes IS NULL OR pg_catalog.jsonb_typeof(changes) OPERATOR(pg_catalog.<>) 'object' THEN
    PERFORM tenancy._invalid_input('tenant changes must be a JSON object');
  END IF;
  -- Validate every key before touching anything: bad input leaves no partial state.
  FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(changes) e LOOP
    IF k OPERATOR(pg_catalog.=) ANY (ARRAY['id', 'slug', 'created_at', 'updated_at', 'trial_ends_at',
                                           'encryption_key_id', 'quotas']) THEN
      PERFORM tenancy._invalid_input(format('tenant field "%s" is read-only', k));
    ELSIF k OPERATOR(pg_catalog.<>) ALL (ARRAY['display_name', 'organization_name', 'plan', 'status',
                                               'data_residency', 'configuration', 'parent_tenant_id']) THEN
      PERFORM tenancy._invalid_input(format('unknown tenant field "%s"', k), NULL,
        'Updatable fields are display_name, organization_name, plan, status, data_residency, configuration and '
        'parent_tenant_id.');
    ELSIF k OPERATOR(pg_catalog.=) 'configuration' THEN
      IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'object' THEN
        PERFORM tenancy._invalid_input('tenant field "configuration" must be a JSON object');
      END IF;
    ELSIF k OPERATOR(pg_catalog.=) ANY (ARRAY['display_name', 'parent_tenant_id']) THEN
      IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) ALL (ARRAY['string', 'null']) THEN
        PERFORM tenancy._invalid_input(format('tenant field "%s" must be a string or null', k));
      END IF;
    ELSIF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'string' THEN
      PERFORM tenancy._invalid_input(format('tenant field "%s" must be a string', k));
    END IF;
  END LOOP;
  IF changes ? 'parent_tenant_id' AND changes ->> 'parent_tenant_id' IS NOT NULL THEN
    IF (changes ->> 'parent_tenant_id') !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
      PERFORM tenancy._invalid_input('tenant field "parent_tenant_id" must be a uuid');
    END IF;
    new_parent := (changes ->> 'parent_tenant_id')::uuid;
  END IF;
  IF changes ? 'organization_name' AND (pg_catalog.btrim(changes ->> 'organization_name') OPERATOR(pg_catalog.=) ''
                                       OR pg_catalog.length(changes ->> 'organization_name') > 255) THEN
    PERFORM tenancy._invalid_input('invalid organization name',
                                   'An organization name has between 1 and 255 characters.');
  END IF;
  IF pg_catalog.length(changes ->> 'display_name') > 255 THEN
    PERFORM tenancy._invalid_input('invalid display name', 'A display name has at most 255 characters.');
  END IF;

  IF changes ? 'parent_tenant_id' THEN
    -- Exclusive: no other re-parenting or child creation runs while this one checks for cycles.
    PERFORM pg_catalog.pg_advisory_xact_lock(1952804449, tenancy._hierarchy_lock_key());
  END IF;
  SELECT * INTO old_row FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) update_tenant.id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(id);
  END IF;
  t := old_row;
  IF changes ? 'display_name' THEN
    t.display_name := changes ->> 'display_name';
  END IF;
  IF changes ? 'organization_name' THEN
    t.organization_name := changes ->> 'organization_name';
  END IF;
  IF changes ? 'plan' THEN
    t.plan := tenancy._parse_plan(changes ->> 'plan');
  END IF;
  IF changes ? 'data_residency' THEN
    t.data_residency := tenancy._parse_residency(changes ->> 'data_residency');
  END IF;
  IF changes ? 'status' THEN
    t.status := tenancy._parse_status(changes ->> 'status');
    PERFORM tenancy._check_status_change(old_row.status, t.status);
  END IF;
  IF changes ? 'configuration' THEN
    t.configuration := tenancy._jsonb_merge(old_row.configuration, changes -> 'configuration');
    -- A size cap (issue #16: the deep merge let one tenant grow its configuration without bound, 12 MB after 12
    -- PATCHes, and its exports then held every pooled connection of tenancyd). 54000 answers 413 over HTTP.
    IF pg_catalog.octet_length(t.configuration::pg_catalog.text) OPERATOR(pg_catalog.>) 65536 THEN
      RAISE EXCEPTION USING ERRCODE = '54000', MESSAGE = 'tenant configuration is too large',
        DETAIL = pg_catalog.format('The configuration would take %s bytes as JSON text; at most 65536 are allowed.',
                                   pg_catalog.octet_length(t.configuration::pg_catalog.text)),
        HINT = 'Remove keys by setting them to null, or keep large documents outside the tenant registry.';
    END IF;
  END IF;
  IF changes ? 'parent_tenant_id' THEN
    t.parent_tenant_id := new_parent;
    IF new_parent IS NOT NULL AND new_parent IS DISTINCT FROM old_row.parent_tenant_id THEN
      IF tenancy._check_ancestry(new_parent, id) + 1 + tenancy._subtree_height(id)
         > tenancy._max_hierarchy_depth() THEN
        RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = 'tenant hierarchy is too deep',
          DETAIL = format('A tenant hierarchy has at most %s levels.', tenancy._max_hierarchy_depth());
      END IF;
    END IF;
  END IF;

  IF t IS NOT DISTINCT FROM old_row THEN
    RETURN old_row;  -- nothing changed: no write, no audit event
  END IF;
  UPDATE tenancy.tenants
     SET display_name = t.display_name, organization_name = t.organization_name, plan = t.plan,
         data_residency = t.data_residency, status = t.status, configuration = t.configuration,
         parent_tenant_id = t.parent_tenant_id, updated_at = pg_catalog.now()
   WHERE tenants.id OPERATOR(pg_catalog.=) update_tenant.id
  RETURNING * INTO t;
  -- What changed, not two whole rows: the slug (which tenant, for a reader) and the old and the new values of the
  -- changed columns, configuration key by key.
  PERFORM tenancy._audit('tenant_updated', t.id,
    pg_catalog.jsonb_build_object('slug', t.slug) OPERATOR(pg_catalog.||)
      tenancy._jsonb_diff(pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text,
                          pg_catalog.to_jsonb(old_row) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text),
    pg_catalog.jsonb_build_object('slug', t.slug) OPERATOR(pg_catalog.||)
      tenancy._jsonb_diff(pg_catalog.to_jsonb(old_row) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text,
                          pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text));
  RETURN t;
END
$$;
COMMENT ON FUNCTION tenancy.update_tenant(uuid, jsonb) IS
  'changes display_name, organization_name, plan, status, data_residency, configuration (merged) or parent_tenant_id';

-- ==== import grants (red team): the staged rows were granted to format('%I', owner) of a regrole, quoting the
-- already quoted name: a table owner whose name needs quotes failed every import.

-- importmove (5): issue #15 (importmove): the live move's DDL on application-written tables (guard triggers,
-- replica identities) retries on lock timeouts instead of deadlocking with a writer (tenancy._move_ddl); two
-- functions the qualification pass had missed (_export_columns, _move_set_guards).

CREATE OR REPLACE FUNCTION tenancy._export_columns(tbl oid) RETURNS text[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
     AND a.attgenerated OPERATOR(pg_catalog.=) ''
$$;
COMMENT ON FUNCTION tenancy._export_columns(oid) IS 'internal: the stored, non-generated columns of a table';

CREATE OR REPLACE FUNCTION tenancy._move_ddl(stmts text[]) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  stmt pg_catalog.text;
BEGIN
  FOR attempt IN 1 .. 30 LOOP
    BEGIN
      -- Local to this function (its SET clause gives it a GUC level of its own), undone with a failed attempt.
      PERFORM pg_catalog.set_config('lock_timeout', '200ms', true);
      FOREACH stmt IN ARRAY stmts LOOP
        EXECUTE stmt;
      END LOOP;
      RETURN;
    EXCEPTION WHEN lock_not_available THEN
      PERFORM pg_catalog.pg_sleep(CASE WHEN attempt OPERATOR(pg_catalog.<) 10 THEN 0.05 ELSE 0.2 END);
    END;
  END LOOP;
  FOREACH stmt IN ARRAY stmts LOOP
    EXECUTE stmt;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_ddl(text[]) IS
  'internal: runs a move''s DDL on application-written tables, retried on lock timeouts (no deadlock with writers)';

COMMENT ON FUNCTION tenancy._move_set_guards(boolean) IS 'internal: installs or removes the move guard triggers';

COMMENT ON FUNCTION tenancy._move_widen_identities() IS
  'internal: REPLICA IDENTITY FULL where a move''s row filter column is outside the replica identity';

COMMENT ON FUNCTION tenancy._move_restore_identities() IS 'internal: restores the replica identities moves widened';

REVOKE ALL ON FUNCTION tenancy._move_ddl(text[]) FROM PUBLIC;

-- Token scope and the audit log's API caller (issue #16, branch tokens): a token issued by a token records its issuer
-- (issuer_token_id), is capped in role and expiry by it and revoked with it; revoke_token refuses a revoker weaker
-- than the token; issue_token caps live tokens (tenancy.max_tokens_per_tenant); authorize_token answers whether the
-- tenant is active and records the request's caller for the audit log (request argument); set_request_caller names
-- the admin token. New signatures: the old functions are dropped (tenancyd is the only caller).
ALTER TABLE tenancy.tenant_tokens ADD COLUMN issuer_token_id uuid REFERENCES tenancy.tenant_tokens (id);
CREATE INDEX tenant_tokens_issuer_idx ON tenancy.tenant_tokens (issuer_token_id) WHERE issuer_token_id IS NOT NULL;
COMMENT ON COLUMN tenancy.tenant_tokens.issuer_token_id IS
  'the token that issued this one (NULL: issued with the admin token or in SQL); revoking it revokes this one';
DROP FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role);
DROP FUNCTION tenancy.authorize_token(bytea, uuid, text);
DROP FUNCTION tenancy.revoke_token(uuid, uuid);
-- Scope of a token issued by a token (tenancyd passes the calling token as issuer_token_id): it never outranks its
-- issuer (its role at most the issuer's, 42501 otherwise), never outlives it (expires_at is capped at the issuer's:
-- an expiring token cannot mint a never-expiring one) and is revoked with it (revoke_token follows issuer_token_id
-- down, so authorize_token checks one row per request and never walks the chain). A tenant has at most
-- tenancy.max_tokens_per_tenant live (neither revoked nor expired) tokens: TN003 beyond.
CREATE FUNCTION tenancy.issue_token(tenant_id uuid, role tenancy.user_role, token_sha256 bytea, name text DEFAULT NULL,
                                    expires_in interval DEFAULT NULL, issuer_role tenancy.user_role DEFAULT NULL,
                                    issuer_token_id uuid DEFAULT NULL)
RETURNS SETOF tenancy.tenant_tokens
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t record;
  issuer record;
  tok tenancy.tenant_tokens;
  expires timestamptz;
  live bigint;
  cap integer := COALESCE(
    pg_catalog.current_setting('tenancy.max_tokens_per_tenant', true)::pg_catalog.int4, 100);
BEGIN
  IF tenant_id IS NULL OR role IS NULL OR token_sha256 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'tenant_id, role and token_sha256 must not be null';
  END IF;
  IF pg_catalog.length(token_sha256) OPERATOR(pg_catalog.<>) 32 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'token_sha256 must be 32 bytes',
      DETAIL = 'Pass the SHA-256 digest of the token, never the token itself.';
  END IF;
  IF name IS NOT NULL AND pg_catalog.length(name) OPERATOR(pg_catalog.>) 200 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'token name must be at most 200 characters';
  END IF;
  IF expires_in IS NOT NULL AND expires_in OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'expires_in must be positive';
  END IF;
  IF issuer_role IS NOT NULL AND NOT tenancy.token_may_grant(issuer_role, role) THEN
    RAISE EXCEPTION USING ERRCODE = '42501',
      MESSAGE = pg_catalog.format('a token with role "%s" cannot issue a token with role "%s"', issuer_role, role);
  END IF;
  -- The tenant row lock serialises the issues of one tenant: two cannot both take the last place under the cap.
  SELECT tn.status, tn.trial_ends_at INTO t
    FROM tenancy.tenants tn WHERE tn.id OPERATOR(pg_catalog.=) issue_token.tenant_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TN001', MESSAGE = pg_catalog.format('tenant "%s" does not exist', tenant_id);
  END IF;
  IF NOT (t.status OPERATOR(pg_catalog.=) 'active'::tenancy.tenant_status
          OR (t.status OPERATOR(pg_catalog.=) 'trial'::tenancy.tenant_status
              AND (t.trial_ends_at IS NULL OR t.trial_ends_at OPERATOR(pg_catalog.>=) pg_catalog.now()))) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN002', MESSAGE = pg_catalog.format('tenant "%s" is not active', tenant_id),
      DETAIL = pg_catalog.format('Its status is %s.', t.status);
  END IF;
  expires := pg_catalog.now() OPERATOR(pg_catalog.+) issue_token.expires_in;
  IF issuer_token_id IS NOT NULL THEN
    -- FOR SHARE waits for a revocation of the issuer under way and then finds it revoked: no token is ever issued
    -- by a token whose revocation (and its cascade) committed before this one.
    SELECT k.role, k.expires_at INTO issuer
      FROM tenancy.tenant_tokens k
     WHERE k.id OPERATOR(pg_catalog.=) issue_token.issuer_token_id
       AND k.tenant_id OPERATOR(pg_catalog.=) issue_token.tenant_id
       AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now())
       FOR SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('issuing token "%s" is not a live token of tenant "%s"', issuer_token_id,
                                    tenant_id);
    END IF;
    IF NOT tenancy.token_may_grant(issuer.role, issue_token.role) THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('a token with role "%s" cannot issue a token with role "%s"', issuer.role,
                                    issue_token.role);
    END IF;
    IF issuer.expires_at IS NOT NULL
       AND (expires IS NULL OR expires OPERATOR(pg_catalog.>) issuer.expires_at) THEN
      expires := issuer.expires_at;
    END IF;
  END IF;
  SELECT pg_catalog.count(*) INTO live
    FROM tenancy.tenant_tokens k
   WHERE k.tenant_id OPERATOR(pg_catalog.=) issue_token.tenant_id
     AND k.revoked_at IS NULL
     AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now());
  IF live OPERATOR(pg_catalog.>=) cap THEN
    RAISE EXCEPTION USING ERRCODE = 'TN003',
      MESSAGE = pg_catalog.format('tenant "%s" already has %s live tokens, the most allowed', tenant_id, live),
      HINT = 'Revoke the tokens it no longer uses, or raise tenancy.max_tokens_per_tenant.';
  END IF;
  INSERT INTO tenancy.tenant_tokens AS k (tenant_id, role, name, token_sha256, expires_at, issuer_token_id)
  VALUES (issue_token.tenant_id, issue_token.role, issue_token.name, issue_token.token_sha256, expires,
          issue_token.issuer_token_id)
  RETURNING k.* INTO tok;
  PERFORM tenancy._audit('token_issued', tok.tenant_id, NULL,
                         pg_catalog.jsonb_build_object('token_id', tok.id, 'role', tok.role, 'name', tok.name,
                                                       'expires_at', tok.expires_at,
                                                       'issuer_token_id', tok.issuer_token_id));
  RETURN NEXT tok;
END
$$;
COMMENT ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role, uuid) IS
  'records a tenant token by its SHA-256 digest; issuer_role or issuer_token_id (when a token issues one) caps its '
  'role, and issuer_token_id also its expiry and its life (revoked with the issuer)';

-- tenancyd's whole authorization of a tenant-token request in one call (one round trip): the live token with this
-- digest (one row while it is neither revoked nor expired, none otherwise), whether its tenant is active
-- (tenant_active: trial within its trial, or active; a suspended, cancelled or expired-trial tenant's token is
-- permitted nothing and metered nothing, and tenancyd answers 403 TN002), whether its role permits action, and,
-- for a permitted call to its own tenant, the metering of one api_calls unit (within_quota; NULL when nothing was
-- metered; 55006 instead while a live move freezes the tenant, see tenancy.move_guard). The only token check there
-- is: a target that is not the token's tenant meters nothing. With request (tenancyd's {"remote_addr", "request_id"}
-- claims, an object of at most 1 kB) the session's audit events name the token found (id, role, tenant), the
-- database role that called and the request, until the next call (extension/pg/request_caller.cpp); without it, or
-- when no live token has the digest, they name no API caller. In C
-- (extension/pg/token_authorize.cpp): as plpgsql it cost ~50 us more per tenancyd request (bench/daemon/RESULTS.md).
CREATE FUNCTION tenancy.authorize_token(digest bytea, target_tenant_id uuid, action text, request jsonb DEFAULT NULL)
RETURNS TABLE (token_id uuid, tenant_id uuid, role tenancy.user_role, token_sha256 bytea, permitted boolean,
               plan tenancy.tenant_plan, within_quota boolean, tenant_active boolean)
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_authorize_token';
COMMENT ON FUNCTION tenancy.authorize_token(bytea, uuid, text, jsonb) IS
  'the live token with this SHA-256 digest, its tenant and role, and whether the role permits action while the '
  'tenant is active; for one tenancyd request to target_tenant_id, meters one api_calls unit when permitted; with '
  'request, the session''s audit events name this token and the request until the next call';

-- tenancyd's caller for the audit log of the requests that authorize_token does not check (the admin token): the
-- session's audit events name "admin token", the database role that said so, and the request's remote address and
-- id (request, a JSON object of at most 1 kB) until the next call; NULL clears it. tenancy_admin only, so an
-- application role can never claim to be an API caller.
CREATE FUNCTION tenancy.set_request_caller(request jsonb) RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_set_request_caller';
COMMENT ON FUNCTION tenancy.set_request_caller(jsonb) IS
  'the session''s audit events name the admin token and this request (NULL: no API caller); for tenancyd';

-- Revokes a live token of the tenant and, with it, every token it issued (issuer_token_id, down the whole chain).
-- With revoker_token_id (tenancyd passes the calling token) only a token the revoker could have issued: a role at
-- most its own (an admin-role token cannot revoke an owner's token), 42501 otherwise.
CREATE FUNCTION tenancy.revoke_token(tenant_id uuid, token_id uuid, revoker_token_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.user_role;
  revoker_role tenancy.user_role;
  c record;
BEGIN
  IF tenant_id IS NULL OR token_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'tenant_id and token_id must not be null';
  END IF;
  IF revoker_token_id IS NOT NULL THEN
    SELECT k.role INTO revoker_role
      FROM tenancy.tenant_tokens k
     WHERE k.id OPERATOR(pg_catalog.=) revoke_token.revoker_token_id
       AND k.tenant_id OPERATOR(pg_catalog.=) revoke_token.tenant_id
       AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now());
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('revoking token "%s" is not a live token of tenant "%s"', revoker_token_id,
                                    tenant_id);
    END IF;
    SELECT k.role INTO r
      FROM tenancy.tenant_tokens k
     WHERE k.id OPERATOR(pg_catalog.=) revoke_token.token_id
       AND k.tenant_id OPERATOR(pg_catalog.=) revoke_token.tenant_id;
    IF FOUND AND NOT tenancy.token_may_grant(revoker_role, r) THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('a token with role "%s" cannot revoke a token with role "%s"', revoker_role, r),
        DETAIL = 'A token may revoke only the tokens it could have issued: those of its own role or a weaker one.';
    END IF;
  END IF;
  UPDATE tenancy.tenant_tokens k SET revoked_at = pg_catalog.now()
   WHERE k.id OPERATOR(pg_catalog.=) revoke_token.token_id
     AND k.tenant_id OPERATOR(pg_catalog.=) revoke_token.tenant_id
     AND k.revoked_at IS NULL
  RETURNING k.role INTO r;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '42704',
      MESSAGE = pg_catalog.format('token "%s" of tenant "%s" does not exist or is already revoked', token_id,
                                  tenant_id);
  END IF;
  PERFORM tenancy._audit('token_revoked', tenant_id, pg_catalog.jsonb_build_object('token_id', token_id, 'role', r),
                         NULL);
  -- Every token issued by this one, by those, and so on, still live: revoked now, each with its own event.
  FOR c IN
    WITH RECURSIVE issued (id) AS (
      SELECT k.id FROM tenancy.tenant_tokens k WHERE k.issuer_token_id OPERATOR(pg_catalog.=) revoke_token.token_id
      UNION
      SELECT k.id FROM tenancy.tenant_tokens k JOIN issued i ON k.issuer_token_id OPERATOR(pg_catalog.=) i.id
    )
    UPDATE tenancy.tenant_tokens k SET revoked_at = pg_catalog.now()
      FROM issued i
     WHERE k.id OPERATOR(pg_catalog.=) i.id AND k.revoked_at IS NULL
    RETURNING k.id, k.role, k.issuer_token_id
  LOOP
    PERFORM tenancy._audit('token_revoked', tenant_id,
                           pg_catalog.jsonb_build_object('token_id', c.id, 'role', c.role,
                                                         'revoked_with', revoke_token.token_id,
                                                         'issuer_token_id', c.issuer_token_id),
                           NULL);
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy.revoke_token(uuid, uuid, uuid) IS
  'revokes a live token of the tenant and every token it issued (42704 when none); with revoker_token_id, only a '
  'token of the revoker''s role or a weaker one (42501)';

REVOKE ALL ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.authorize_token(bytea, uuid, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.revoke_token(uuid, uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.set_request_caller(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role, uuid)
  TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.authorize_token(bytea, uuid, text, jsonb) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.revoke_token(uuid, uuid, uuid) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.set_request_caller(jsonb) TO tenancy_admin;

-- ==== live move counts (red team): _move_table_list and move_target_progress count the move's tables with
-- superuser rights; like the export they now refuse tables whose planning would run the owner's code
-- (tenancy._require_plain_read) or whose tenant column is no longer uuid.

-- ==== track_quota attaches its trigger as the table's owner: tenancy_admin needs EXECUTE on the trigger function.
GRANT EXECUTE ON FUNCTION tenancy._quota_track() TO tenancy_admin;

-- ==== track_quota for tenancy_admin (red team): CREATE TRIGGER needs EXECUTE on the trigger function, which only
-- superusers had, so every non-superuser admin's track_quota failed with 42501.
GRANT EXECUTE ON FUNCTION tenancy._quota_track() TO tenancy_admin;

-- ==== import, format 1 (red team): the one staging table holding every table's rows (the tenant's users, keys and
-- audit events too) was granted to each application table's owner, whose triggers run during the import; now the
-- owner gets a copy of its own table's rows only.

-- ==== quota counter load (red team): the first load of a users/projects counter counts the tracked tables with
-- superuser rights on the write path; its plain-read check takes ACCESS SHARE only, so an insert never waits behind
-- a VACUUM or CREATE INDEX of a tracked table.
