#!/usr/bin/env bash
# Chromium for the browser test (tests/browser), which Playwright drives at its system path;
# Playwright itself never downloads a browser. Run by `make test` (target `browser`).
# - A browser is already there ($DLCOURSE_CHROMIUM, chromium, google-chrome): nothing to do.
# - Debian/Ubuntu (apt-get) as root, or with password-less sudo: install Debian's `chromium`.
# - Anywhere else: say so; the browser test then skips (and fails under CI=true).
set -euo pipefail

if [ -n "${DLCOURSE_CHROMIUM:-}" ]; then
  [ -x "$DLCOURSE_CHROMIUM" ] && exit 0
  echo "DLCOURSE_CHROMIUM=$DLCOURSE_CHROMIUM is not an executable file; point it at chromium or chrome." >&2
  exit 1
fi
for browser in chromium chromium-browser google-chrome; do
  if command -v "$browser" >/dev/null 2>&1; then exit 0; fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "No Chromium here and no apt-get to install it: the browser test will be skipped."
  echo "To run it, install Chromium or Chrome and set DLCOURSE_CHROMIUM=/path/to/the/browser."
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  echo "No Chromium here, and installing Debian's chromium needs root: the browser test will be skipped."
  echo "To run it: sudo apt-get install chromium"
  exit 0
fi
echo "installing Debian's chromium for the browser test (once; about 30 s)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
chromium --version 2>/dev/null  # (Debian's wrapper script also prints a harmless shell warning)
