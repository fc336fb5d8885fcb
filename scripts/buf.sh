#!/usr/bin/env bash
# Runs buf (lint, breaking) from the npm registry's @bufbuild/buf package, cached in .cache/npm.
set -euo pipefail
BUF_VERSION=1.75.0
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.cache/npm/buf-$BUF_VERSION"
buf="$prefix/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  echo "installing buf $BUF_VERSION from npm into $prefix" >&2
  npm install --silent --no-audit --no-fund --prefix "$prefix" "@bufbuild/buf@$BUF_VERSION" >&2
fi
exec "$buf" "$@"
