#!/usr/bin/env bash
# What the tests need besides cargo: wechatpy, the independent WeChat SDK the interop tests
# drive, and Debian's Chromium with its WebDriver for the console's browser tests.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r peers/requirements.txt
# A CJK font, so the screenshots the browser tests save show the Chinese text.
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null \
  || ! fc-list 2>/dev/null | grep -qi "wenquanyi"; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null
fi
