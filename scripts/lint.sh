#!/usr/bin/env bash
# `make lint`: ruff (lint + format check, ruff.toml), mypy (setup.cfg), import-linter (.importlinter).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh --ros  # the same environment as make test: mypy sees rclpy's types
.venv/bin/pip install -q --disable-pip-version-check -r requirements-lint.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
PATHS=(yolact_ros bench test scripts)
echo "[lint] ruff check"; .venv/bin/ruff check "${PATHS[@]}"
echo "[lint] ruff format --check"; .venv/bin/ruff format --check "${PATHS[@]}"
echo "[lint] mypy"; .venv/bin/mypy
echo "[lint] import-linter"; .venv/bin/lint-imports --no-cache
echo "[lint] clean"
