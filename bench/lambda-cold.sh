#!/usr/bin/env bash
# Lambda cold vs warm start; see bench/lambda_cold.py.
exec python3 "$(dirname "$0")/lambda_cold.py" "$@"
