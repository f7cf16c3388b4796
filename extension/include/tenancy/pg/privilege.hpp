// extension/include/tenancy/pg/privilege.hpp
// Who is calling, and running catalog/table work as the extension's owner. PG regime: these may ereport.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace tenancy::pg {

// True when the caller (current_user: our C entry points are SECURITY INVOKER, so never a SECURITY DEFINER owner)
// is a superuser or has the privileges of tenancy_admin. Cached per role until role memberships or attributes change.
bool CallerIsAdmin(void);

// Raises 42501 with a hint naming tenancy_admin unless CallerIsAdmin(); what names the action ("create tenants").
void RequireAdmin(const char *what);

// The owner of schema tenancy (the role that ran CREATE EXTENSION).
Oid ExtensionOwnerId(void);

// Runs fn(arg) with current_user switched to the extension owner (SECURITY_LOCAL_USERID_CHANGE), restoring the
// caller afterwards, also on error (transaction abort restores it too). Use for SPI on registry tables from
// functions app roles may call, after every authorization check on the caller is done.
void RunAsExtensionOwner(void (*fn)(void *), void *arg);

} // namespace tenancy::pg
