#!/usr/bin/env bash
# Compile and run the JUnit tests of the app's plain-JVM core (android_demo/core) without
# Gradle or Android tools: only a JDK and Debian's junit4 package are needed.
#
# Usage: android_demo/tools/run_jvm_tests.sh [GOLDEN_DIR]
#   GOLDEN_DIR: the files written by `tflbnn app-golden` (default: $TFLBNN_GOLDEN_DIR, else
#   build/android-golden at the repository root). GoldenParityTest fails when it is missing.
# Environment:
#   ANDROID_JAR: an Android API 23 android.jar; when set, the core is also compiled against it
#   (as the app build does) to prove it uses no newer Java API.
# Output goes to android_demo/build/jvm. Exits non-zero on any compile error or test failure.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
demo_dir="$(dirname "$script_dir")"
repo_root="$(dirname "$demo_dir")"
core_dir="$demo_dir/core"
out_dir="$demo_dir/build/jvm"
golden_dir="${1:-${TFLBNN_GOLDEN_DIR:-$repo_root/build/android-golden}}"
junit_jar=/usr/share/java/junit4.jar
# Debian's junit4 depends on libhamcrest-java; junit 4.13 needs hamcrest-core's classes.
hamcrest_jar=/usr/share/java/hamcrest-core.jar

fail() {
    echo "run_jvm_tests.sh: $*" >&2
    exit 1
}

for tool in javac java; do
    command -v "$tool" >/dev/null 2>&1 \
        || fail "'$tool' not found; install a JDK (Debian: apt-get install openjdk-17-jdk-headless)"
done
for jar in "$junit_jar" "$hamcrest_jar"; do
    [[ -f "$jar" ]] || fail "$jar not found; install JUnit 4 (Debian: apt-get install junit4)"
done

rm -rf "$out_dir"
mkdir -p "$out_dir/main" "$out_dir/test" "$out_dir/android-check"

mapfile -t main_sources < <(find "$core_dir/src/main/java" -name '*.java' | sort)
mapfile -t test_sources < <(find "$core_dir/src/test/java" -name '*.java' | sort)
(( ${#main_sources[@]} > 0 )) || fail "no sources under $core_dir/src/main/java"
(( ${#test_sources[@]} > 0 )) || fail "no tests under $core_dir/src/test/java"

echo "Compiling ${#main_sources[@]} core sources (Java 8)"
javac --release 8 -Xlint:all -Werror -encoding UTF-8 -d "$out_dir/main" "${main_sources[@]}"

if [[ -n "${ANDROID_JAR:-}" ]]; then
    [[ -f "$ANDROID_JAR" ]] || fail "ANDROID_JAR=$ANDROID_JAR is not a file"
    echo "Compiling core against $ANDROID_JAR"
    # -Xlint:-options: javac 17 warns that source/target 8 are deprecated; that is the point.
    javac -source 8 -target 8 -Xlint:-options -encoding UTF-8 -bootclasspath "$ANDROID_JAR" \
        -d "$out_dir/android-check" "${main_sources[@]}"
fi

echo "Compiling ${#test_sources[@]} test sources"
javac --release 8 -encoding UTF-8 -cp "$out_dir/main:$junit_jar:$hamcrest_jar" \
    -d "$out_dir/test" "${test_sources[@]}"

test_classes=()
for source in "${test_sources[@]}"; do
    relative="${source#"$core_dir/src/test/java/"}"
    class="${relative%.java}"
    class="${class//\//.}"
    # Test classes end in Test; other test sources are helpers.
    [[ "$class" == *Test ]] && test_classes+=("$class")
done
(( ${#test_classes[@]} > 0 )) || fail "no *Test classes under $core_dir/src/test/java"

echo "Running ${#test_classes[@]} test classes (golden files: $golden_dir)"
java -Dtflbnn.golden.dir="$golden_dir" \
    -cp "$out_dir/main:$out_dir/test:$core_dir/src/test/resources:$junit_jar:$hamcrest_jar" \
    org.junit.runner.JUnitCore "${test_classes[@]}"
