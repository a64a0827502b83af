#!/usr/bin/env bash
# Builds the web dashboard (web/ -> web/dist) with the exact dependency tree in
# web/package-lock.json. CMake then embeds web/dist into the icos binary
# (src/controller/embed_web_assets.cmake). Skips the npm steps when nothing
# in web/ changed since the last build.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null 2>&1; then
  echo "build-web: npm not found; run scripts/install-deps.sh (the dashboard needs Node.js and npm)" >&2
  exit 1
fi

# Everything the build reads, newest first: rebuild when any is newer than dist.
stamp=node_modules/.icos-web-built  # outside dist/: everything in dist/ is embedded
if [ -f "$stamp" ] && [ -f dist/index.html ] && \
   [ -z "$(find index.html package.json package-lock.json vite.config.ts tsconfig.json src public -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  echo "build-web: web/dist is up to date"
  exit 0
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci: exactly the lock file's versions; --prefer-offline reuses npm's cache.
  npm ci --prefer-offline --no-audit --no-fund
fi
npm run build
touch "$stamp"
echo "build-web: built web/dist"
