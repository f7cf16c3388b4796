// extension/include/tenancy/pg/privilege.hpp
// Who is calling, and the only doorways through which tenancy's C code runs with rights its caller lacks.
// PG regime: these may ereport.
//
// Every doorway switches current_user (SECURITY_LOCAL_USERID_CHANGE) AND pins search_path to
// "pg_catalog, pg_temp" for the duration (a GUC nest level; restored on return and on error), so that no type,
// operator, function or table name in owner-run SQL can resolve to an object the caller created. The SQL run
// inside must still qualify every non-catalog name (pg_temp is searched for relations and types, last).
#pragma once

extern "C" {
#include "postgres.h"
}

namespace tenancy::pg {

// The NOLOGIN, non-superuser role that owns schema tenancy, its tables and its SECURITY DEFINER functions.
#define TENANCY_OWNER_ROLE "tenancy_owner"

// True when the caller (current_user: our C entry points are SECURITY INVOKER) is a superuser, has the privileges
// of tenancy_admin, or is the owner role (our own SECURITY DEFINER functions run as it). Cached per role until
// role memberships or attributes change.
bool CallerIsAdmin(void);

// Raises 42501 with a hint naming tenancy_admin unless CallerIsAdmin(); what names the action ("create tenants").
void RequireAdmin(const char *what);

// The owner of schema tenancy: tenancy_owner once 0.3.0's ownership step ran (the superuser that ran CREATE
// EXTENSION on a database not yet updated).
Oid ExtensionOwnerId(void);

// pg_extension.extowner: the superuser that ran CREATE EXTENSION (RunAsSuperuser's role, the audit writer's login).
Oid ExtensionCreatorId(void);

// Runs fn(arg) as the owner of schema tenancy: registry tables, counters, keys, audit. Use after every
// authorization check on the caller is done. That role has no right on application tables.
void RunAsExtensionOwner(void (*fn)(void *), void *arg);

// Runs fn(arg) as the owner of relid: DDL on an application table (policies, row security, defaults, indexes),
// which the owner may do anyway, so the extension never does more to a table than its owner could.
void RunAsTableOwner(Oid relid, void (*fn)(void *), void *arg);

// Runs fn(arg) as the superuser that ran CREATE EXTENSION (pg_extension.extowner). Only for the work listed in
// docs/isolation.md "Privilege model" that needs it: reading or writing application tables across tenants
// (export, import, erase, partition counts, quota recounts) and CREATE SUBSCRIPTION.
void RunAsSuperuser(void (*fn)(void *), void *arg);

} // namespace tenancy::pg
