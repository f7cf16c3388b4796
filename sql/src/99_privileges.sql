-- sql/src/99_privileges.sql
-- Last part of the install script: PUBLIC gets nothing; each function is granted explicitly where it is defined.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tenancy FROM PUBLIC;
