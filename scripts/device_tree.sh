#!/usr/bin/env bash
# Make the working tree fit the device tool (at most 64 MiB travels: tracked files, untracked files git does not
# ignore, and the carried paths), for scripts/device_fidelity.sh.  The tracked tree is ~100 MiB (figures,
# amorphous data, shipped checkpoints), and the device image lacks pymatgen.
#
#     bash scripts/device_tree.sh wheels    # cp312 wheels of what the image lacks -> .whl/ (ignored locally)
#     bash scripts/device_tree.sh slim      # remove the tracked files the run does not read; print the size
#     bash scripts/device_tree.sh size      # what would travel (MiB), with .whl/ carried
#     bash scripts/device_tree.sh restore   # every removed tracked file back (git checkout)
#
# `slim` keeps only the package, the benchmarks and scripts, the dataset file, the GPAW store and the two test
# files the check stage runs; nothing is committed, and `restore` brings the rest back from git.  A build that
# commits data/reference_sites meanwhile (scripts/build_reference.py commits that path only) is not disturbed.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP='^(s2s/|benchmarks/|scripts/|pyproject\.toml$|README\.md$|\.gitignore$|data/s2s_open_v1\.h5$|data/reference_sites/|tests/(conftest|test_device)\.py$)'
# what the device image lacks (its package list: ../.library/device/KINDS.md), at the versions installed here
WHEELS=(pymatgen-core monty orjson ruamel.yaml)

size() {
    { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s -- 2> /dev/null \
        | awk -v whl="$(du -sb .whl 2> /dev/null | cut -f1)" \
            '{ s += $1 } END { printf "%.1f MiB travel (%.1f MiB tree, %.1f MiB .whl); the limit is 64\n", (s + whl) / 1048576, s / 1048576, whl / 1048576 }'
}

case "${1:-}" in
    wheels)
        grep -qx '/.whl/' .git/info/exclude 2> /dev/null || echo '/.whl/' >> .git/info/exclude
        mkdir -p .whl
        PY=${PYTHON:-.venv/bin/python}
        for name in "${WHEELS[@]}"; do
            version=$($PY -m pip show "$name" | awk '/^Version:/ { print $2 }')
            $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
                --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
                -d .whl "$name==$version"
        done
        ls -la .whl
        ;;
    slim)
        git ls-files -z | grep -zvE "$KEEP" | xargs -0 -r rm -f --
        size
        ;;
    size) size ;;
    restore)
        git ls-files -z --deleted | xargs -0 -r git checkout --
        echo "restored; git status:"
        git status --short | head
        ;;
    *)
        echo "usage: $0 wheels|slim|size|restore" >&2
        exit 2
        ;;
esac
