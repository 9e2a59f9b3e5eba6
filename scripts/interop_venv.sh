#!/usr/bin/env bash
# Prints the folder of the interop tests' virtual environment (setup.sh creates it, build.sh
# points the tests at its Python): $MODELPRESS_VENV, or one per user outside any clone.
echo "${MODELPRESS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/interop-venv}"
