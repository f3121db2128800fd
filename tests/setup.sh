#!/usr/bin/env bash
# What the tests need besides cargo: wechatpy, the independent WeChat SDK the interop tests
# drive, and Debian's Chromium with its WebDriver for the console's browser tests.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r peers/requirements.txt
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
