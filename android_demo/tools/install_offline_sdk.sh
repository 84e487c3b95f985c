#!/usr/bin/env bash
# Installs what the offline APK build (build_offline_apk.sh) and the JVM tests need on a
# Debian bookworm machine without Google's SDK:
#   - bookworm packages: aapt (with aapt2), apksigner, zipalign, dexdump, junit4, a JDK 17;
#   - from Debian bullseye: libandroid-23-java (android.jar, API 23) and dalvik-exchange (dx),
#     which bookworm no longer ships. They are fetched with a private apt configuration
#     (the system's apt sources and lists stay untouched) and only unpacked into
#     android_demo/build/sdk/, never installed system-wide.
# Idempotent: a second run finds everything in place and returns at once.
# Usage: android_demo/tools/install_offline_sdk.sh
set -euo pipefail

DEMO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SDK_DIR="$DEMO_DIR/build/sdk"
# Paths inside the unpacked bullseye packages (symlinks in the packages point at these files).
ANDROID_JAR="$SDK_DIR/usr/share/java/com.android.android-23.jar"
DX_JAR="$SDK_DIR/usr/share/java/com.android.dx-10.0.0.jar"

BOOKWORM_PACKAGES=(aapt apksigner zipalign dexdump junit4 openjdk-17-jdk-headless)
BULLSEYE_PACKAGES=(libandroid-23-java dalvik-exchange)

fail() {
    echo "install_offline_sdk: ERROR: $*" >&2
    exit 1
}

is_installed() {
    # dpkg-query prints "install ok installed" only for fully installed packages.
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_bookworm_packages() {
    local missing=()
    local package
    for package in "${BOOKWORM_PACKAGES[@]}"; do
        is_installed "$package" || missing+=("$package")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "Debian packages present: ${BOOKWORM_PACKAGES[*]}"
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "install_offline_sdk: missing Debian packages: ${missing[*]}" >&2
        echo "Install them as root with:" >&2
        echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "Installing Debian packages: ${missing[*]}"
    # Try the current package lists first; refresh them only when they are stale or absent.
    local install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
    if ! DEBIAN_FRONTEND=noninteractive "${install[@]}"; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive "${install[@]}" \
            || fail "apt-get could not install: ${missing[*]}"
    fi
}

fetch_bullseye_packages() {
    if [ -f "$ANDROID_JAR" ] && [ -f "$DX_JAR" ]; then
        echo "Bullseye android.jar and dx already unpacked in $SDK_DIR"
        return
    fi
    local sources_file=/etc/apt/sources.list.d/debian.sources
    [ -f "$sources_file" ] \
        || fail "$sources_file not found: cannot tell which Debian archive to use"
    # Use the archive this machine already uses rather than a hard-coded host name.
    local archive_uri
    archive_uri="$(awk '/^URIs:/{print $2; exit}' "$sources_file")"
    [ -n "$archive_uri" ] || fail "no URIs: line in $sources_file"

    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand $work now: it is local to this function
    trap "rm -rf '$work'" EXIT
    mkdir -p "$work/apt/parts" "$work/apt/lists/partial" "$work/apt/cache/archives/partial" \
        "$work/debs"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    echo "deb [signed-by=$keyring] $archive_uri bullseye main" > "$work/apt/sources.list"
    # Every apt path that would otherwise point at system state is redirected into $work.
    local apt_options=(
        -o "Dir::Etc::SourceList=$work/apt/sources.list"
        -o "Dir::Etc::SourceParts=$work/apt/parts"
        -o "Dir::State::Lists=$work/apt/lists"
        -o "Dir::Cache=$work/apt/cache"
        -o "APT::Sandbox::User=root"
    )
    echo "Fetching ${BULLSEYE_PACKAGES[*]} from $archive_uri bullseye (private apt configuration)"
    apt-get "${apt_options[@]}" update -q \
        || fail "apt-get update of the private bullseye list failed"
    (cd "$work/debs" && apt-get "${apt_options[@]}" download "${BULLSEYE_PACKAGES[@]}") \
        || fail "could not download ${BULLSEYE_PACKAGES[*]} from bullseye"

    # Unpack into a fresh folder first so an interrupted run never leaves a half SDK behind.
    rm -rf "$SDK_DIR.partial"
    mkdir -p "$SDK_DIR.partial"
    local deb
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -x "$deb" "$SDK_DIR.partial"
    done
    rm -rf "$SDK_DIR"
    mv "$SDK_DIR.partial" "$SDK_DIR"
    [ -f "$ANDROID_JAR" ] || fail "android.jar not found at $ANDROID_JAR after unpacking"
    [ -f "$DX_JAR" ] || fail "dx jar not found at $DX_JAR after unpacking"
}

install_bookworm_packages
fetch_bullseye_packages
echo "android.jar (API 23): $ANDROID_JAR"
echo "dx jar:               $DX_JAR"
