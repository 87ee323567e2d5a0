#!/bin/sh
# ensure_apt.sh FILE PACKAGE: install a Debian package when FILE is missing and apt can be used here.
file="$1"; package="$2"
[ -e "$file" ] && exit 0
command -v apt-get >/dev/null 2>&1 || exit 1
if [ "$(id -u)" = "0" ]; then sudo=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else exit 1; fi
echo "installing Debian package $package (for $file)"
$sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null
[ -e "$file" ]
