#!/usr/bin/env bash
# packaging/build-deb.sh: `make deb`. Builds postgresql-15-tenancy and tenancyd with dpkg-buildpackage in a scratch
# copy of the tree (packaging/debian becomes debian/), lints them, and leaves the .debs in $DEB_OUT (build/deb).
#   TENANCY_SKIP_DEPS=1   do not run apt-get for the build tools
#   DEB_OUT=DIR           where the .deb, .buildinfo and .changes files go (debug symbols in DIR/dbgsym)
#   DEB_BUILD_OPTIONS     passed through (e.g. nocheck to skip the unit tests run at build time)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${DEB_OUT:-$ROOT/build/deb}

if [ "${TENANCY_SKIP_DEPS:-0}" != 1 ]; then
  bash packaging/install-deps.sh --deb
fi

VERSION=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/tenancy-${VERSION%-*}"
mkdir -p "$SRC"

# Copy the sources, never build output: in a git checkout the tracked and the new, not ignored files (what the
# developer is about to commit); elsewhere the tree without build artefacts.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$SRC"
else
  tar --exclude=./build --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . |
    tar -xf - -C "$SRC"
fi
rm -rf "$SRC/debian"
cp -a packaging/debian "$SRC/debian"

echo "== dpkg-buildpackage tenancy $VERSION (log: $OUT/build.log)"
mkdir -p "$OUT"
rm -rf "$OUT"/*.deb "$OUT"/*.buildinfo "$OUT"/*.changes "$OUT/dbgsym"
if ! (cd "$SRC" && dpkg-buildpackage -b -us -uc -J"$(nproc)") >"$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"
  echo "make deb: dpkg-buildpackage failed, full log in $OUT/build.log" >&2
  exit 1
fi

# Lintian on the binary packages: errors fail the build, warnings are shown.
echo "== lintian"
changes=$(ls "$WORK"/*.changes)
# Its scratch files go to $WORK, which is removed on exit.
mkdir -p "$WORK/lintian-tmp"
TMPDIR="$WORK/lintian-tmp" lintian --fail-on error --display-level '>=warning' "$changes" | tee "$OUT/lintian.log"
# An info-level tag, so checked by name: tenancyd must be built with _FORTIFY_SOURCE (debian/rules passes CPPFLAGS).
if TMPDIR="$WORK/lintian-tmp" lintian --tags hardening-no-fortify-functions "$changes" | grep .; then
  echo "make deb: a binary is built without _FORTIFY_SOURCE" >&2
  exit 1
fi

# Debug symbols apart, so that `apt-get install ./*.deb` in $OUT installs exactly the two packages.
mkdir -p "$OUT/dbgsym"
mv "$WORK"/*-dbgsym_*.*deb "$OUT/dbgsym/" 2>/dev/null || true
cp "$WORK"/*.deb "$WORK"/*.buildinfo "$WORK"/*.changes "$OUT"/
echo "== packages in $OUT"
ls -1 "$OUT"/*.deb
