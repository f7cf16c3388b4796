-- quota_rate_limit: rate_limit's per-tenant token buckets (burst, refill, separate keys and tenants, access, errors)
\set VERBOSITY terse
SELECT id AS t1 FROM tenancy.create_tenant('Rate One', 'rate-one') \gset
SELECT id AS t2 FROM tenancy.create_tenant('Rate Two', 'rate-two') \gset
-- a burst of 3 at one token per 1000 s: three calls pass, the fourth is refused
SELECT g, tenancy.rate_limit(:'t1', 'login', 0.001, 3) FROM generate_series(1, 4) g;
-- buckets are per key and per tenant
SELECT tenancy.rate_limit(:'t1', 'search', 0.001, 1) AS other_key, tenancy.rate_limit(:'t2', 'login', 0.001, 1) AS other_tenant;
SELECT tenancy.rate_limit(:'t1', 'search', 0.001, 1) AS search_again;
-- tokens come back at per_second (20 a second: 100 ms gives back at least one)
SELECT tenancy.rate_limit(:'t1', 'refill', 20, 1) AS first, tenancy.rate_limit(:'t1', 'refill', 0.001, 1) AS drained;
SELECT pg_sleep(0.1);
SELECT tenancy.rate_limit(:'t1', 'refill', 20, 1) AS refilled;
-- a bucket follows the latest figures: a larger burst does not grant tokens it never earned
SELECT tenancy.rate_limit(:'t1', 'login', 0.001, 100) AS larger_burst;
-- an application role: its context tenant only
CREATE ROLE regress_rate_app IN ROLE tenancy_app;
SET ROLE regress_rate_app;
\set VERBOSITY sqlstate
BEGIN;
SELECT tenancy.set_tenant(:'t2');
SELECT tenancy.rate_limit(:'t2', 'api', 1000, 10) AS own;
SELECT tenancy.rate_limit(:'t1', 'api', 1000, 10);
ROLLBACK;
SELECT tenancy.rate_limit(:'t2', 'api', 1000, 10);
RESET ROLE;
DROP ROLE regress_rate_app;
-- invalid input:
SELECT tenancy.rate_limit(:'t1', '', 1, 1);
SELECT tenancy.rate_limit(:'t1', repeat('k', 64), 1, 1);
SELECT tenancy.rate_limit(:'t1', 'k', 0, 1);
SELECT tenancy.rate_limit(:'t1', 'k', -1, 1);
SELECT tenancy.rate_limit(:'t1', 'k', 'NaN', 1);
SELECT tenancy.rate_limit(:'t1', 'k', 'Infinity', 1);
SELECT tenancy.rate_limit(:'t1', 'k', 1, 0);
SELECT tenancy.rate_limit('00000000-0000-0000-0000-000000000000', 'k', 1, 1);
\set VERBOSITY terse
SELECT tenancy.rate_limit(:'t1', NULL, 1, 1) IS NULL AS strict;
