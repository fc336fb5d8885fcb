#!/usr/bin/env bash
# `buf breaking`: the protos here against the main branch's, so a change inside a major version stays additive
# (FILE rules, proto/buf.yaml). Works in a fresh or shallow clone (main, else origin/main, or BUF_AGAINST_REF);
# without git history to compare against it says so and skips.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "buf breaking: skipped: not a git checkout, no main branch to compare the protos against"
  exit 0
fi
ref=""
for candidate in "${BUF_AGAINST_REF:-}" main origin/main; do
  if [ -n "$candidate" ] && git rev-parse --verify --quiet "$candidate^{commit}" >/dev/null; then
    ref="$candidate"
    break
  fi
done
if [ -z "$ref" ]; then
  echo "buf breaking: skipped: no main branch in this clone (fetch it, or set BUF_AGAINST_REF)"
  exit 0
fi
if ! git cat-file -e "$ref:proto/buf.yaml" 2>/dev/null; then
  echo "buf breaking: skipped: $ref has no proto module yet"
  exit 0
fi
# The committed protos of that ref, beside the working tree's: works from a worktree and a shallow clone alike.
against="$(mktemp -d)"
trap 'rm -rf "$against"' EXIT
git archive "$ref" proto | tar -x -C "$against"
echo "buf breaking: proto against $ref ($(git rev-parse --short "$ref"))"
"$root/scripts/buf.sh" breaking proto --against "$against/proto"
