#!/usr/bin/env bash
# Everything CI verifies about the Android demo on a machine without Google's Maven or an
# emulator: installs the offline tools, writes golden files with the Python package, runs the
# app logic's JUnit tests against them (golden parity included), and builds, signs and checks
# the offline APK. Usage: android_demo/tools/check.sh   (from anywhere; needs root on a fresh
# Debian machine to install packages).
set -euo pipefail
TOOLS="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$TOOLS/../.." && pwd)"
cd "$ROOT"

GOLDEN="$ROOT/build/android-golden"
MODEL="android_demo/app/src/main/assets/model.tflite"

echo "== 1/4 offline Android tools"
"$TOOLS/install_offline_sdk.sh"

echo "== 2/4 golden files from tflbnn ($GOLDEN)"
scripts/bootstrap.sh tflbnn app-golden --model "$MODEL" --out "$GOLDEN" --fashion-mnist 20 \
    tests/data/photos/*.png tests/data/photos/*.jpg

echo "== 3/4 JVM tests of the app logic"
ANDROID_JAR="$(find "$ROOT/android_demo/build/sdk" -name android.jar -print -quit)"
export ANDROID_JAR
"$TOOLS/run_jvm_tests.sh" "$GOLDEN"

echo "== 4/4 offline APK"
"$TOOLS/build_offline_apk.sh"
