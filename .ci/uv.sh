# Sourced by .ci/lock and .ci/bounds: a scratch folder ($scratch, removed on exit) holding uv in
# a virtual environment of its own (`$scratch/venv/bin/uv`), a copy of pyproject.toml, and
# build-system.in, the build backend's requirements (locked and tested like the rest: the
# project is installed without build isolation).
UV_VERSION=0.13.9

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q "uv==$UV_VERSION"
cp pyproject.toml "$scratch/"
python3 -c 'import sys, tomllib; print(*tomllib.load(sys.stdin.buffer)["build-system"]["requires"], sep="\n")' \
    <pyproject.toml >"$scratch/build-system.in"
