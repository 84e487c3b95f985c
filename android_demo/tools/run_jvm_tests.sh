#!/usr/bin/env bash
# Compile and run the JUnit tests of the app's plain-JVM core (android_demo/core) without
# Gradle or Android tools: only a JDK and Debian's junit4 package are needed. With ANDROID_JAR
# set, also the local unit tests of the app module (app/src/test/java, as Gradle's
# testDebugUnitTest would run them): app/src/main/java (not app/src/lce) is compiled against
# the API 23 android.jar, and the tests exercise only code that calls no Android method (the
# jar's methods are stubs); a test double stands in for the LCE engine.
#
# Usage: android_demo/tools/run_jvm_tests.sh [GOLDEN_DIR]
#   GOLDEN_DIR: the files written by `tflbnn app-golden` (default: $TFLBNN_GOLDEN_DIR, else
#   build/android-golden at the repository root). GoldenParityTest fails when it is missing.
#   SidecarCasesTest reads the metadata schema cases in tests/data/sidecar_cases (repository
#   root), which Python's tests use too.
# Environment:
#   ANDROID_JAR: an Android API 23 android.jar; when set, the core is also compiled against it
#   (as the app build does) to prove it uses no newer Java API, and the app tests run. When
#   unset the app tests are skipped (tools/check.sh, which CI runs, always sets it).
# Output goes to android_demo/build/jvm. Exits non-zero on any compile error or test failure.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
demo_dir="$(dirname "$script_dir")"
repo_root="$(dirname "$demo_dir")"
core_dir="$demo_dir/core"
app_dir="$demo_dir/app"
out_dir="$demo_dir/build/jvm"
golden_dir="${1:-${TFLBNN_GOLDEN_DIR:-$repo_root/build/android-golden}}"
# The metadata schema cases shared with Python's tests (SidecarCasesTest).
sidecar_cases_dir="$repo_root/tests/data/sidecar_cases"
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
mkdir -p "$out_dir/main" "$out_dir/test" "$out_dir/android-check" "$out_dir/app-main" \
    "$out_dir/app-test"

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

# Test classes end in Test; other test sources are helpers. $1: the source root.
test_class_names() {
    local root="$1" source relative class
    shift
    for source in "$@"; do
        relative="${source#"$root/"}"
        class="${relative%.java}"
        class="${class//\//.}"
        [[ "$class" == *Test ]] && echo "$class"
    done
    return 0
}

mapfile -t test_classes < <(test_class_names "$core_dir/src/test/java" "${test_sources[@]}")
(( ${#test_classes[@]} > 0 )) || fail "no *Test classes under $core_dir/src/test/java"

app_test_classes=()
if [[ -n "${ANDROID_JAR:-}" ]]; then
    # Sources that use the app's R class (MainActivity) are left out: aapt2 generates R from
    # the resources, which tools/build_offline_apk.sh does and then compiles every source.
    app_sources=()
    r_users=()
    while IFS= read -r source; do
        if grep -qE '(^|[^A-Za-z0-9_.])R\.[a-z]+\.' "$source"; then
            r_users+=("$(basename "$source")")
        else
            app_sources+=("$source")
        fi
    done < <(find "$app_dir/src/main/java" -name '*.java' | sort)
    mapfile -t app_test_sources < <(find "$app_dir/src/test/java" -name '*.java' | sort)
    (( ${#app_sources[@]} > 0 )) || fail "no sources under $app_dir/src/main/java"
    (( ${#app_test_sources[@]} > 0 )) || fail "no tests under $app_dir/src/test/java"
    # Like build_offline_apk.sh: Java 8 against the API 23 jar (-Xlint:-options: the
    # "source 8" notes are expected).
    echo "Compiling ${#app_sources[@]} app sources (app/src/main/java without" \
        "${r_users[*]:-nothing}, which needs aapt2's R; Java 8, API 23)"
    javac -source 8 -target 8 -Xlint:all,-options -encoding UTF-8 \
        -bootclasspath "$ANDROID_JAR" -classpath "$out_dir/main:$ANDROID_JAR" \
        -d "$out_dir/app-main" "${app_sources[@]}"
    echo "Compiling ${#app_test_sources[@]} app test sources"
    # android.jar last: it also holds stub junit.framework classes.
    javac --release 8 -encoding UTF-8 \
        -cp "$out_dir/app-main:$out_dir/main:$junit_jar:$hamcrest_jar:$ANDROID_JAR" \
        -d "$out_dir/app-test" "${app_test_sources[@]}"
    mapfile -t app_test_classes < <(test_class_names "$app_dir/src/test/java" \
        "${app_test_sources[@]}")
    (( ${#app_test_classes[@]} > 0 )) || fail "no *Test classes under $app_dir/src/test/java"
fi

status=0
echo "Running ${#test_classes[@]} test classes (golden files: $golden_dir; sidecar cases:" \
    "$sidecar_cases_dir)"
java -Dtflbnn.golden.dir="$golden_dir" -Dtflbnn.sidecar.cases.dir="$sidecar_cases_dir" \
    -cp "$out_dir/main:$out_dir/test:$core_dir/src/test/resources:$junit_jar:$hamcrest_jar" \
    org.junit.runner.JUnitCore "${test_classes[@]}" || status=$?

if (( ${#app_test_classes[@]} > 0 )); then
    echo "Running ${#app_test_classes[@]} app test classes (app: $app_dir)"
    # app/src/lce is not compiled here, so the org.tflbnn.demo.runtime.LceInterpreterEngine
    # that RuntimeLoader finds is the tests' double. android.jar last, as above.
    app_classpath="$out_dir/app-test:$out_dir/app-main:$out_dir/main"
    java -Dtflbnn.app.dir="$app_dir" \
        -cp "$app_classpath:$junit_jar:$hamcrest_jar:$ANDROID_JAR" \
        org.junit.runner.JUnitCore "${app_test_classes[@]}" || status=$?
else
    echo "App tests (app/src/test/java) skipped: ANDROID_JAR is not set; they need the API 23" \
        "android.jar (tools/install_offline_sdk.sh unpacks it, tools/check.sh sets it)"
fi
exit "$status"
