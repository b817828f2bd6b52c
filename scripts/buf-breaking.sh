#!/usr/bin/env bash
# Checks that the protos stay wire-compatible with main's (buf breaking, FILE rules), so a
# replica of the previous release keeps talking to this one during a rolling upgrade.
# Offline: buf reads the baseline from this repository's own git history, never from the
# Buf Schema Registry.
#
# The baseline: BUF_BREAKING_AGAINST (any git ref) if set; else where this branch left main
# (git merge-base with main, or origin/main in a clone that has only that); on main itself
# (a fresh clone in CI), main's previous commit (the first parent: the state before the
# last merge). A shallow clone lacks that history and fails with a hint; the root commit has
# nothing to compare against.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${BUF_BREAKING_AGAINST:-}" ]]; then
  base=$(git rev-parse --verify "${BUF_BREAKING_AGAINST}^{commit}")
else
  if [[ "$(git rev-parse --is-shallow-repository)" == true ]]; then
    echo "buf-breaking: shallow clone: run 'git fetch --unshallow' (the baseline is in main's history) or set BUF_BREAKING_AGAINST" >&2
    exit 1
  fi
  main=""
  for ref in main origin/main; do
    if git rev-parse --verify -q "$ref^{commit}" >/dev/null; then main=$ref; break; fi
  done
  if [[ -z "$main" ]]; then
    echo "buf-breaking: no main or origin/main to compare against: set BUF_BREAKING_AGAINST to a ref" >&2
    exit 1
  fi
  base=$(git merge-base HEAD "$main")
  if [[ "$base" == "$(git rev-parse HEAD)" ]]; then
    if ! base=$(git rev-parse --verify -q "HEAD^1"); then
      echo "buf-breaking: HEAD is the root commit: nothing to compare against"
      exit 0
    fi
  fi
fi
if ! git cat-file -e "$base:proto" 2>/dev/null; then
  echo "buf-breaking: $base has no proto/ directory: nothing to compare against"
  exit 0
fi
echo "buf breaking against $(git log -1 --format='%h %s' "$base")"
buf breaking --against ".git#ref=$base"
