#!/usr/bin/env bash
# The device tool copies the working tree (tracked files, untracked files git does not ignore, carried paths) to
# the GPU machine, at most 64 MiB; the repository's committed model files (toolkit ONNX, fixtures, `shapes`)
# make it about 122 MiB, and the GPU check needs none of them. Before a device run:
#
#     scripts/gpu/device-tree.sh shrink     # untracks (index only) and ignores the files over 500 kB
#     ... device run, carry: ["out/glimpse-cuda.tar.xz"] ...
#     scripts/gpu/device-tree.sh restore    # tracks them again; the working tree was never touched
#
# Nothing is committed or deleted: `shrink` removes the files from git's index and lists them in
# .git/info/exclude between two marker lines; `restore` puts them back in the index and drops those lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
exclude=.git/info/exclude
begin="# >>> device-tree.sh shrink"
end="# <<< device-tree.sh shrink"
case "${1:-}" in
  shrink)
    grep -qF "$begin" "$exclude" 2>/dev/null && { echo "already shrunk" >&2; exit 1; }
    mapfile -t big < <(git ls-files -z | xargs -0 stat -c '%s %n' | awk '$1 > 500000 {print $2}')
    git rm -q --cached -- "${big[@]}"
    { echo "$begin"; printf '/%s\n' "${big[@]}"; echo "$end"; } >> "$exclude"
    git ls-files -z | xargs -0 stat -c '%s' | awk '{s+=$1} END {printf "tracked now: %.1f MiB\n", s/1048576}'
    ;;
  restore)
    mapfile -t big < <(sed -n "/^$begin\$/,/^$end\$/p" "$exclude" | grep '^/' | cut -c2-)
    sed -i "/^$begin\$/,/^$end\$/d" "$exclude"
    [ ${#big[@]} -eq 0 ] || git reset -q -- "${big[@]}"
    git status --short | head
    ;;
  *) echo "usage: $0 shrink|restore" >&2; exit 2 ;;
esac
