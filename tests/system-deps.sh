#!/usr/bin/env bash
# The Debian packages the tests need beyond Python's: installed when missing, quietly skipped
# when present (no `apt-get update` then), so running this before every test run costs nothing.
#
#   bash tests/system-deps.sh
#
# chromium: the browser the console's tests (tests/browser) drive with Playwright;
# fonts-wqy-microhei: a small CJK font, so that their screenshots show Chinese, not boxes;
# redis-server: the Redis the shared concurrency cap's tests start (GLM_REDIS_URL);
# postgresql: the server the store's PostgreSQL tests start (GLM_DB_URL), as the postgres user;
# openssl: makes the certificate the HTTPS test of the GLM client's transport serves.
set -euo pipefail

PACKAGES=(
    chromium
    fonts-wqy-microhei
    redis-server
    postgresql
    openssl
)

installed() {
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "system-deps.sh: ${missing[*]} missing; run this as root or install sudo" >&2
    exit 1
fi

echo "system-deps.sh: installing ${missing[*]}" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
