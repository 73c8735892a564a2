#!/usr/bin/env bash
# bubblewrap (`bwrap`), the sandbox `dlcourse grade` runs every submission in (and the grading
# tests need). Run by `make test` (target `sandbox`).
# - bwrap is already on PATH: nothing to do.
# - Debian/Ubuntu (apt-get) as root, or with password-less sudo: install Debian's `bubblewrap`.
# - Anywhere else: say so. The grader then refuses to grade unless given --no-sandbox, and the
#   sandbox tests skip (and fail under CI=true).
set -euo pipefail

command -v bwrap >/dev/null 2>&1 && exit 0

as_root=""
if [ "$(id -u)" -ne 0 ]; then
  as_root="sudo -n"
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || as_root="no"
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$as_root" = "no" ]; then
  echo "bubblewrap is not installed and this script can only install it with apt-get as root."
  echo "Install the package that provides bwrap (Debian/Ubuntu: sudo apt-get install bubblewrap); until then"
  echo "dlcourse grade needs --no-sandbox and the sandbox tests are skipped."
  exit 0
fi
echo "installing Debian's bubblewrap for sandboxed grading (once; a few seconds)"
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq bubblewrap >/dev/null
bwrap --version
