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
