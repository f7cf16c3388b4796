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

-- fairness: one tenant creating distinct keys cannot take the table from the others (it used to hold every
-- bucket until a restart). fill(): keys fill-1..fill-n of a tenant, until the first error.
CREATE FUNCTION pg_temp.fill(t uuid, n int, per_second float8, prefix text DEFAULT 'fill-', OUT created int,
                             OUT refused text) LANGUAGE plpgsql AS $$
BEGIN
  created := 0;
  FOR g IN 1..n LOOP
    BEGIN
      PERFORM tenancy.rate_limit(t, prefix || g, per_second, 1);
      created := created + 1;
    EXCEPTION WHEN OTHERS THEN
      refused := SQLSTATE;
      RETURN;
    END;
  END LOOP;
END
$$;
SELECT id AS hog FROM tenancy.create_tenant('Rate Hog', 'rate-hog') \gset
SELECT id AS t3 FROM tenancy.create_tenant('Rate Three', 'rate-three') \gset
SELECT id AS t4 FROM tenancy.create_tenant('Rate Four', 'rate-four') \gset
-- the default share: a sixteenth of tenancy.rate_limit_max_buckets (16384 here), so 1024 buckets that have not
-- refilled (one token per 1000 s); the hog's next new key is TN003
SHOW tenancy.rate_limit_max_buckets_per_tenant;
SELECT * FROM pg_temp.fill(:'hog', 20000, 0.001);
-- its own buckets still answer, other tenants still get new keys
SELECT tenancy.rate_limit(:'hog', 'fill-1', 0.001, 1) AS hog_old_key_empty,
       tenancy.rate_limit(:'t3', 'fresh-1', 0.001, 1) AS other_tenant_new_key,
       tenancy.rate_limit(:'t3', 'fresh-2', 0.001, 1) AS and_another;
\set VERBOSITY default
SELECT tenancy.rate_limit(:'hog', 'one-more', 0.001, 1);
\set VERBOSITY terse
-- a share set by the superuser; refilled buckets are reclaimed: 8 keys refilling in 2.5 s (0.4 tokens a second),
-- the ninth refused until they have refilled, then admitted (and an old key starts over, full)
SET tenancy.rate_limit_max_buckets_per_tenant = 8;
SELECT * FROM pg_temp.fill(:'t4', 8, 0.4, 'slow-');
SELECT * FROM pg_temp.fill(:'t4', 1, 0.4, 'ninth-');
SELECT pg_sleep(2.6);
SELECT * FROM pg_temp.fill(:'t4', 1, 0.4, 'ninth-');
SELECT tenancy.rate_limit(:'t4', 'slow-1', 0.4, 1) AS reclaimed_key_full_again;
-- the whole table is reclaimed the same way: with no share, one tenant's 20,000 keys that refill at once
-- (a million tokens a second) pass through the 16,384 buckets; the hog's buckets are untouched
SET tenancy.rate_limit_max_buckets_per_tenant = 1000000;
SELECT * FROM pg_temp.fill(:'t2', 20000, 1e6, 'quick-');
SELECT tenancy.rate_limit(:'hog', 'fill-2', 0.001, 1) AS hog_still_empty;
RESET tenancy.rate_limit_max_buckets_per_tenant;
-- only a superuser sets the share
CREATE ROLE regress_rate_admin IN ROLE tenancy_admin;
SET ROLE regress_rate_admin;
\set VERBOSITY sqlstate
SET tenancy.rate_limit_max_buckets_per_tenant = 100000;
RESET ROLE;
DROP ROLE regress_rate_admin;
