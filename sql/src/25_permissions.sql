-- sql/src/25_permissions.sql
-- The role permission matrix (SPEC.md "Domain"): permission(role, resource) and allowed(role, resource, action).

CREATE FUNCTION tenancy.permission(role text, resource text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  -- role -> resource -> level, exactly the matrix of SPEC.md.
  matrix CONSTANT jsonb := '{
    "owner":     {"users": "full", "projects": "full",     "admin": "full",    "billing": "full", "ai_services": "full"},
    "admin":     {"users": "full", "projects": "full",     "admin": "full",    "billing": "read", "ai_services": "full"},
    "manager":   {"users": "team", "projects": "team",     "admin": "limited", "billing": "none", "ai_services": "team"},
    "developer": {"users": "self", "projects": "assigned", "admin": "none",    "billing": "none", "ai_services": "assigned"},
    "viewer":    {"users": "none", "projects": "read",     "admin": "none",    "billing": "none", "ai_services": "read"},
    "guest":     {"users": "none", "projects": "limited",  "admin": "none",    "billing": "none", "ai_services": "none"}
  }';
BEGIN
  IF role IS NULL OR NOT matrix ? role THEN
    PERFORM tenancy._invalid_input(format('invalid role "%s"', role), NULL,
                                   'Valid roles are owner, admin, manager, developer, viewer and guest.');
  END IF;
  IF resource IS NULL OR NOT (matrix -> 'owner') ? resource THEN
    PERFORM tenancy._invalid_input(format('unknown resource "%s"', resource), NULL,
                                   'Resources are users, projects, admin, billing and ai_services.');
  END IF;
  RETURN matrix -> role ->> resource;
END
$$;
COMMENT ON FUNCTION tenancy.permission(text, text) IS
  'access level (full, team, self, assigned, read, limited, none) of a role on a resource';

CREATE FUNCTION tenancy.permission(role tenancy.user_role, resource text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT tenancy.permission(role::text, resource)
$$;
COMMENT ON FUNCTION tenancy.permission(tenancy.user_role, text) IS 'permission() for a user_role value';

-- full, team, self and assigned allow read and write (within their scope); read and limited allow read only.
CREATE FUNCTION tenancy.allowed(role text, resource text, action text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  level text := tenancy.permission(role, resource);
BEGIN
  IF action IS NULL OR action OPERATOR(pg_catalog.<>) ALL (ARRAY['read', 'write']) THEN
    PERFORM tenancy._invalid_input(format('unknown action "%s"', action), NULL, 'Actions are read and write.');
  END IF;
  IF action OPERATOR(pg_catalog.=) 'read' THEN
    RETURN level OPERATOR(pg_catalog.<>) 'none';
  END IF;
  RETURN level OPERATOR(pg_catalog.=) ANY (ARRAY['full', 'team', 'self', 'assigned']);
END
$$;
COMMENT ON FUNCTION tenancy.allowed(text, text, text) IS 'whether a role may read or write a resource';

CREATE FUNCTION tenancy.allowed(role tenancy.user_role, resource text, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT tenancy.allowed(role::text, resource, action)
$$;
COMMENT ON FUNCTION tenancy.allowed(tenancy.user_role, text, text) IS 'allowed() for a user_role value';

REVOKE ALL ON FUNCTION tenancy.permission(text, text), tenancy.permission(tenancy.user_role, text),
  tenancy.allowed(text, text, text), tenancy.allowed(tenancy.user_role, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.permission(text, text), tenancy.permission(tenancy.user_role, text),
  tenancy.allowed(text, text, text), tenancy.allowed(tenancy.user_role, text, text) TO tenancy_admin, tenancy_app;
