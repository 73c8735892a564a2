#!/usr/bin/env bash
# bubblewrap (`bwrap`) for `dlcourse grade`, which runs every submission inside it, and for the
# grading tests. Run by `make test` (target `sandbox`).
# - bwrap is already on PATH: nothing to do.
# - Debian/Ubuntu (apt-get) as root, or with password-less sudo: install Debian's `bubblewrap`.
# - Anywhere else: say so; the grader then refuses to grade unless given --no-sandbox, and the
#   sandbox tests skip (and fail under CI=true).
set -euo pipefail

if command -v bwrap >/dev/null 2>&1; then exit 0; fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "No bubblewrap here and no apt-get to install it: dlcourse grade will need --no-sandbox."
  echo "To sandbox grading, install bubblewrap (the bwrap command) with your system's package manager."
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  echo "No bubblewrap here, and installing Debian's bubblewrap needs root: the sandbox tests will be skipped."
  echo "To run them: sudo apt-get install bubblewrap"
  exit 0
fi
echo "installing Debian's bubblewrap for sandboxed grading (once; a few seconds)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq bubblewrap >/dev/null
bwrap --version
