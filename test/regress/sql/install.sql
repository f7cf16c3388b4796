-- install: the extension's schema, roles, enums and plan figures after CREATE EXTENSION
\set VERBOSITY terse
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'tenancy';
SELECT rolname, rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname IN ('tenancy_admin', 'tenancy_app') ORDER BY 1;
SELECT * FROM tenancy.plans ORDER BY plan;
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE t.typnamespace = 'tenancy'::regnamespace GROUP BY 1 ORDER BY 1;
-- nothing of the schema is granted to PUBLIC
SELECT has_schema_privilege('public', 'tenancy', 'USAGE') AS public_usage;
-- slug and e-mail rules
SELECT tenancy._validate_slug('acme-corp');
SELECT tenancy._normalize_email('Admin@Acme-Corp.COM');
-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy._validate_slug('Acme');
SELECT tenancy._validate_slug('ab');
SELECT tenancy._normalize_email('not-an-email');
