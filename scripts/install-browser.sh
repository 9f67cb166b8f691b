#!/usr/bin/env bash
# Install what the browser tests (tests/ui/) need: Debian's Chromium and its chromedriver, and
# Firefox ESR (driven over WebDriver BiDi, no geckodriver). Idempotent: does nothing when they
# are installed. Needs root (CI runs it as root; as another user it only warns, and the UI
# tests skip with the reason). Browsers come from Debian's archive only, nothing else.
#   scripts/install-browser.sh            Chromium + chromedriver + Firefox ESR
#   MMRAG_UI_FIREFOX=0 scripts/install-browser.sh   Chromium + chromedriver only
set -euo pipefail

packages=()
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || packages+=(chromium chromium-driver)
if [[ "${MMRAG_UI_FIREFOX:-1}" != "0" && ! -x /usr/bin/firefox-esr ]]; then
  packages+=(firefox-esr)
fi

if [[ ${#packages[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-browser: not root, not installing ${packages[*]}; the UI tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}"
