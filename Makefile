# Makefile: PGXS build of the tenancy extension (C++), plus the top-level driver for the daemon and the tests.
#   make            extension module + install script + tenancyd + unit tests (CMake underneath)
#   make install    extension into the server pg_config names, tenancyd into /usr/local/bin
#   make check      every test against throw-away servers (test/run-tests.sh), as root on a bare machine too
#   make deb        Debian packages postgresql-15-tenancy and tenancyd in build/deb/ (packaging/build-deb.sh)

EXTENSION = tenancy
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = tenancy
OBJS = $(patsubst %.cpp,%.o,$(sort $(wildcard extension/core/*.cpp extension/pg/*.cpp)))

# The install script is assembled from one file per concern (sql/src/NN_name.sql, in name order).
SQL_PARTS = $(sort $(wildcard sql/src/*.sql))

# Released versions are frozen files; the step to the unreleased version is assembled from its hand-written
# changes plus the parts that did not exist in the previous release (DEVELOPING.md "Releasing" freezes it).
PREV_VERSION = 0.2.0
PREV_PARTS = 00_schema 05_audit 10_tenants 20_users 25_permissions 30_context 35_registry_access 40_isolation \
	45_partitions 45_verify_isolation 50_quota 60_crypto 70_tokens 71_sla 80_residency 85_export 87_directory \
	88_move 99_privileges
# Ownership and privileges are (re)applied at the end of every upgrade step, so objects the step adds are covered.
EVERY_STEP_PARTS = sql/src/98_ownership.sql sql/src/99_privileges.sql
NEW_PARTS = $(filter-out $(patsubst %,sql/src/%.sql,$(PREV_PARTS)) $(EVERY_STEP_PARTS),$(SQL_PARTS))
UPGRADE_CHANGES = sql/upgrade/$(PREV_VERSION)--$(EXTVERSION)-changes.sql
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql sql/$(EXTENSION)--$(PREV_VERSION)--$(EXTVERSION).sql
DATA = sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.1.0--0.2.0.sql sql/$(EXTENSION)--0.2.0.sql

PG_CONFIG ?= pg_config
CMAKE_BUILD_DIR ?= build
CMAKE_BUILD_TYPE ?= RelWithDebInfo

# PostgreSQL 15's headers compile as C++20 with g++ 12.
override PG_CXXFLAGS += -std=c++20 -fPIC -Iextension/include -Wno-missing-field-initializers -Wno-register
override PG_CPPFLAGS += -Iextension/include
SHLIB_LINK += -lssl -lcrypto -lmodpbase64 -lstdc++

# No JIT bitcode: Debian's PGXS would need a matching clang, and none of our functions benefit from inlining.
override with_llvm = no

.PHONY: daemon check check-asan deb format

ifeq ($(filter check check-% deb,$(MAKECMDGOALS)),)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

all: daemon

# Concatenates the .sql prerequisites, in the order listed, each under a marker line naming its source.
ASSEMBLE_SQL = { for f in $(filter %.sql,$^); do echo "-- ==== $$f"; cat "$$f"; echo; done; } > $@

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS) $(EXTENSION).control
	$(ASSEMBLE_SQL)

sql/$(EXTENSION)--$(PREV_VERSION)--$(EXTVERSION).sql: $(UPGRADE_CHANGES) $(NEW_PARTS) $(EVERY_STEP_PARTS)
	$(ASSEMBLE_SQL)

daemon:
	cmake -S . -B $(CMAKE_BUILD_DIR) -DCMAKE_BUILD_TYPE=$(CMAKE_BUILD_TYPE) -DTENANCY_SANITIZE="$(TENANCY_SANITIZE)" \
		$(CMAKE_OPTS) >/dev/null
	cmake --build $(CMAKE_BUILD_DIR) -j$(shell nproc)

install: install-daemon
install-daemon: daemon
	install -D -m 0755 $(CMAKE_BUILD_DIR)/tenancyd $(DESTDIR)/usr/local/bin/tenancyd

clean: clean-daemon
clean-daemon:
	rm -rf $(CMAKE_BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')
else
# make check runs outside PGXS (whose own check target is "not supported"): the script builds, installs into a
# throw-away copy of the server, and runs unit, regress, isolation and integration tests.
check:
	bash test/run-tests.sh

# A build dir of its own: TENANCY_SANITIZE is a CMake cache variable, and build/ keeps the plain build.
check-asan:
	TENANCY_SANITIZE=address,undefined CMAKE_BUILD_DIR=build-asan bash test/run-tests.sh

deb:
	bash packaging/build-deb.sh
endif
