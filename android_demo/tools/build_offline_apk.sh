#!/usr/bin/env bash
# Builds, signs and checks the demo APK without Gradle or Google's SDK, with Debian's Android
# tools (install them with tools/install_offline_sdk.sh). This is what CI runs; users build the
# real app with Gradle (README.md).
#
# The APK holds the core (core/src/main/java) and the app (app/src/main/java) compiled against
# the API 23 android.jar, the resources, and the assets. It does NOT hold app/src/lce (the
# TFLite/LCE engine needs the LCE AAR), so on a phone it shows the model's facts and reports
# that the runtime is missing. Checked here: signature, badging (package, sdkVersion 23,
# launcher activity, no permissions), assets (model stored uncompressed), classes in the dex.
#
# Output: android_demo/build/offline/tflbnn-demo.apk (+ badging.txt next to it).
# Usage: android_demo/tools/build_offline_apk.sh
set -euo pipefail

START_NS=$(date +%s%N)
DEMO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP_DIR="$DEMO_DIR/app"
CORE_DIR="$DEMO_DIR/core"
SDK_DIR="$DEMO_DIR/build/sdk"
OUT_DIR="$DEMO_DIR/build/offline"
WORK="$OUT_DIR/work"
APK="$OUT_DIR/tflbnn-demo.apk"
KEYSTORE="$DEMO_DIR/build/debug.jks"
ANDROID_JAR="$SDK_DIR/usr/share/java/com.android.android-23.jar"
DX_JAR="$SDK_DIR/usr/share/java/com.android.dx-10.0.0.jar"

fail() {
    echo "build_offline_apk: FAILED: $*" >&2
    exit 1
}
trap 'echo "build_offline_apk: FAILED: command at line $LINENO exited with $?" >&2' ERR

step() {
    echo "== $*"
}

# --- tools -------------------------------------------------------------------------------
for tool in aapt aapt2 apksigner zipalign dexdump javac java keytool unzip zipinfo; do
    command -v "$tool" >/dev/null \
        || fail "$tool not found; run android_demo/tools/install_offline_sdk.sh"
done
[ -f "$ANDROID_JAR" ] && [ -f "$DX_JAR" ] \
    || fail "android.jar/dx not found under $SDK_DIR; run android_demo/tools/install_offline_sdk.sh"
[ -d "$CORE_DIR/src/main/java" ] || fail "core sources missing: $CORE_DIR/src/main/java"
for asset in model.tflite model.json; do
    [ -f "$APP_DIR/src/main/assets/$asset" ] \
        || fail "app/src/main/assets/$asset missing (tflbnn app-model puts it there)"
done

# --- app identity, read from app/build.gradle so the two builds cannot drift ---------------
gradle_value() {
    # First value of a "key value" or "key 'value'" line in app/build.gradle.
    local value
    value="$(sed -n -E "s/^[[:space:]]*$1[[:space:]]+'?([^' ]+)'?[[:space:]]*$/\1/p" \
        "$APP_DIR/build.gradle" | head -n 1)"
    [ -n "$value" ] || fail "no '$1' in $APP_DIR/build.gradle"
    echo "$value"
}
PACKAGE="$(gradle_value namespace)"
MIN_SDK="$(gradle_value minSdk)"
TARGET_SDK="$(gradle_value targetSdk)"
VERSION_CODE="$(gradle_value versionCode)"
VERSION_NAME="$(gradle_value versionName)"
echo "package $PACKAGE, minSdk $MIN_SDK, targetSdk $TARGET_SDK," \
    "version $VERSION_NAME ($VERSION_CODE)"

rm -rf "$WORK" "$APK"
mkdir -p "$WORK/gen" "$WORK/classes"

# --- resources and manifest ---------------------------------------------------------------
step "aapt2: resources, manifest, assets"
# The source manifest has no package attribute (AGP 8 takes it from namespace); aapt2 needs one.
sed -E "0,/<manifest /s//<manifest package=\"$PACKAGE\" /" "$APP_DIR/src/main/AndroidManifest.xml" \
    > "$WORK/AndroidManifest.xml"
grep -q "package=\"$PACKAGE\"" "$WORK/AndroidManifest.xml" \
    || fail "could not set the package in the manifest"
aapt2 compile --dir "$APP_DIR/src/main/res" -o "$WORK/resources.zip"
# -0 .tflite: the model is stored, not deflated, like Gradle's androidResources.noCompress
# (this aapt2 matches the extension with its dot: "-0 tflite" leaves it compressed).
aapt2 link -I "$ANDROID_JAR" \
    --manifest "$WORK/AndroidManifest.xml" \
    --min-sdk-version "$MIN_SDK" --target-sdk-version "$TARGET_SDK" \
    --version-code "$VERSION_CODE" --version-name "$VERSION_NAME" \
    -A "$APP_DIR/src/main/assets" -0 .tflite \
    --java "$WORK/gen" \
    -o "$WORK/app.unsigned.apk" \
    "$WORK/resources.zip"

# --- Java ---------------------------------------------------------------------------------
step "javac: core + app (without src/lce), Java 8 against API $MIN_SDK"
find "$CORE_DIR/src/main/java" "$APP_DIR/src/main/java" "$WORK/gen" -name '*.java' | sort \
    > "$WORK/sources.txt"
[ -s "$WORK/sources.txt" ] || fail "no Java sources found"
# -Xlint:-options: the "bootstrap class path / source 8" notes are expected here.
javac -source 8 -target 8 -encoding UTF-8 -Xlint:all,-options \
    -bootclasspath "$ANDROID_JAR" -classpath "$ANDROID_JAR" \
    -d "$WORK/classes" @"$WORK/sources.txt"

step "dx: classes.dex"
java -jar "$DX_JAR" --dex --min-sdk-version="$MIN_SDK" --output="$WORK/classes.dex" "$WORK/classes"
(cd "$WORK" && aapt add -v app.unsigned.apk classes.dex >/dev/null)

# --- align and sign -----------------------------------------------------------------------
step "zipalign + apksigner"
zipalign -f -p 4 "$WORK/app.unsigned.apk" "$WORK/app.aligned.apk"
if [ ! -f "$KEYSTORE" ]; then
    # A throwaway debug key, kept in build/ so rebuilt APKs install over each other.
    keytool -genkeypair -keystore "$KEYSTORE" -storepass android -keypass android \
        -alias androiddebugkey -keyalg RSA -keysize 2048 -validity 10000 \
        -dname "CN=tflbnn demo debug, O=tflbnn, C=US" >/dev/null 2>&1 \
        || fail "keytool could not create $KEYSTORE"
fi
apksigner sign --ks "$KEYSTORE" --ks-pass pass:android --key-pass pass:android \
    --ks-key-alias androiddebugkey --out "$APK" "$WORK/app.aligned.apk"

# --- checks -------------------------------------------------------------------------------
step "apksigner verify"
apksigner verify --verbose "$APK" | tee "$WORK/verify.txt"
grep -q '^Verified using v2 scheme (APK Signature Scheme v2): true' "$WORK/verify.txt" \
    || fail "APK is not signed with scheme v2"
zipalign -c -p 4 "$APK" || fail "APK is not 4-byte aligned"

step "aapt dump badging"
aapt dump badging "$APK" | tee "$OUT_DIR/badging.txt"
BADGING="$OUT_DIR/badging.txt"
grep -q "^package: name='$PACKAGE' " "$BADGING" || fail "badging: package is not $PACKAGE"
grep -q "^sdkVersion:'$MIN_SDK'$" "$BADGING" || fail "badging: sdkVersion is not $MIN_SDK"
grep -q "^targetSdkVersion:'$TARGET_SDK'$" "$BADGING" \
    || fail "badging: targetSdkVersion is not $TARGET_SDK"
grep -q "^launchable-activity: name='$PACKAGE.MainActivity'" "$BADGING" \
    || fail "badging: launchable activity is not $PACKAGE.MainActivity"
grep -q "^application-label:'tflbnn demo'$" "$BADGING" || fail "badging: label is not 'tflbnn demo'"
# The app promises no permissions at all (implied ones included).
if grep -E "uses-permission|uses-implied-permission" "$BADGING"; then
    fail "badging: the APK requests permissions (lines above); it must request none"
fi

step "assets"
zipinfo "$APK" assets/model.tflite assets/model.json | tee "$WORK/assets.txt" \
    || fail "assets/model.tflite or assets/model.json missing from the APK"
awk '$NF == "assets/model.tflite" { found = 1; stored = ($6 == "stor") }
     END { exit !(found && stored) }' \
    "$WORK/assets.txt" || fail "assets/model.tflite is compressed (zipinfo method is not 'stor')"
for asset in model.tflite model.json; do
    unzip -p "$APK" "assets/$asset" | cmp -s - "$APP_DIR/src/main/assets/$asset" \
        || fail "assets/$asset in the APK differs from app/src/main/assets/$asset"
done

step "dexdump"
unzip -p "$APK" classes.dex > "$WORK/check.dex"
dexdump "$WORK/check.dex" | sed -n -E "s/^ *Class descriptor *: *'L(.*);'$/\1/p" | tr / . \
    | sort > "$WORK/classes.txt"
for class in "$PACKAGE.MainActivity" "$PACKAGE.RuntimeLoader" \
        org.tflbnn.demo.core.ImagePreprocessor org.tflbnn.demo.core.Classifier \
        org.tflbnn.demo.core.TfliteModel; do
    grep -qx "$class" "$WORK/classes.txt" || fail "class $class is not in classes.dex"
done
# The offline build has no runtime by design: nothing from src/lce or TensorFlow Lite.
if grep -E '^(org\.tensorflow\.|org\.tflbnn\.demo\.runtime\.)' "$WORK/classes.txt"; then
    fail "classes.dex contains runtime classes (above) that need the LCE AAR"
fi
echo "$(wc -l < "$WORK/classes.txt") classes in classes.dex"

ELAPSED_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
printf 'OK: %s (%d bytes) built and checked in %d.%03d s\n' \
    "$APK" "$(stat -c %s "$APK")" $((ELAPSED_MS / 1000)) $((ELAPSED_MS % 1000))
