-- sql/upgrade/0.2.0--0.3.0-changes.sql
-- Hand-written part of the 0.2.0 -> 0.3.0 step: objects of 0.2.0 that changed (CREATE OR REPLACE / ALTER). The
-- Makefile appends the parts that did not exist in 0.2.0 and the parts that run on every install and upgrade.
\echo Use "ALTER EXTENSION tenancy UPDATE TO '0.3.0'" to load this file. \quit
