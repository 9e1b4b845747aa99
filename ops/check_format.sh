#!/usr/bin/env bash
# Checks that every tracked C++ file (.h, .cc) is formatted as the checked-in
# .clang-format says: one style, enforced by the tool, not by review.
# Usage: ops/check_format.sh [--fix] [FILE...]
#   (no FILE)            every tracked .h and .cc file
#   --fix                reformat the files in place instead of checking
#   LEDGER_FORMAT_CHECK=0  skip the check
# Formatting differs between clang-format releases: CI uses Debian's
# (ops/setup.sh installs it), and so should whoever runs --fix.
set -euo pipefail
cd "$(dirname "$0")/.."
style=$PWD/.clang-format

mode=check
if [ "${1:-}" = --fix ]; then
  mode=fix
  shift
fi
if [ "$mode" = check ] && [ "${LEDGER_FORMAT_CHECK:-1}" = 0 ]; then
  echo "format check: skipped (LEDGER_FORMAT_CHECK=0)"
  exit 0
fi
if ! command -v clang-format >/dev/null 2>&1; then
  echo "format check: clang-format is missing; ops/setup.sh installs it" >&2
  exit 1
fi

if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files -- '*.h' '*.cc')
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "format check: no files" >&2
  exit 1
fi

if [ "$mode" = fix ]; then
  clang-format -i --style="file:$style" "${files[@]}"
  echo "format: reformatted ${#files[@]} files with $(clang-format --version)"
  exit 0
fi
# --dry-run --Werror prints each difference as an error and fails; a list
# of the files at the end says what to run --fix on.
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run --Werror --style="file:$style" "$f" 2>/dev/null; then bad+=("$f"); fi
done
if [ ${#bad[@]} -gt 0 ]; then
  clang-format --dry-run --Werror --style="file:$style" "${bad[@]}" 2>&1 | head -40 >&2 || true
  printf 'format check: %d of %d files differ from .clang-format:\n' "${#bad[@]}" "${#files[@]}" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix with: ops/check_format.sh --fix FILE... (or --fix alone for every file)" >&2
  exit 1
fi
echo "format check: ${#files[@]} files match .clang-format ($(clang-format --version))"
