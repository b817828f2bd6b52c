#!/usr/bin/env bash
# Runs every fuzz target in the module, each alone in its package (go test -fuzz takes one
# target, and -fuzz=FuzzParse would match FuzzParseList too, so each is anchored:
# -fuzz=^FuzzName$), for FUZZTIME each (default 10s). The targets are found by their
# `func Fuzz…(f *testing.F)` line, so a new one is run without editing this list.
#   FUZZTIME=1m scripts/fuzz.sh        (make fuzz FUZZTIME=1m)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
targets=$(grep -rE --include='*_test.go' --exclude-dir=.cache --exclude-dir=.git --exclude-dir=node_modules \
  -o '^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's/:func (Fuzz[A-Za-z0-9_]*)\($/ \1/' | sort)
if [ -z "$targets" ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
n=$(wc -l <<<"$targets")
echo "fuzz: $n targets, $fuzztime each"
while read -r file name; do
  pkg=./$(dirname "${file#./}")
  echo "fuzz: $name in $pkg"
  go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
done <<<"$targets"
echo "fuzz: all $n targets ran for $fuzztime without a failure"
