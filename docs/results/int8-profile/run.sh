#!/usr/bin/env bash
# Where DenseNet-121's int8 time goes on ONNX Runtime's CPU provider (about 4 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/../../.."
.venv/bin/python docs/results/int8-profile/int8_profile.py docs/results/int8-profile
