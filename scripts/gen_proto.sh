#!/usr/bin/env bash
# Generates Python code from proto/ into proto/gen (ignored) so it is installed as one package.
set -euo pipefail
cd "$(dirname "$0")/../proto"
PY="${PYTHON:-../.venv/bin/python}"
rm -rf gen && mkdir -p gen
mapfile -t files < <(find refnet -name '*.proto' | sort)
"$PY" -m grpc_tools.protoc -I . --python_out=gen --grpc_python_out=gen --pyi_out=gen "${files[@]}"
find gen -type d -exec touch {}/__init__.py \;
rm -f gen/__init__.py
echo "generated $(find gen -name '*_pb2.py' | wc -l) modules from ${#files[@]} proto files"
