#!/usr/bin/env bash
# Copies what the production install needs from a built checkout SRC into DEST: the root manifests
# and, per workspace package, package.json + dist/src (+ the protocol's generated code). Then
# `npm ci --omit=dev` in DEST gives the runtime tree. Used by deploy/Dockerfile and by the
# production-install test (test/e2e/prod-install.test.ts), so both check the same thing.
set -euo pipefail
src=${1:?usage: stage-prod.sh SRC DEST}
dest=${2:?usage: stage-prod.sh SRC DEST}
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$dest/"
for p in "$src"/packages/*/; do
  name=$(basename "$p")
  mkdir -p "$dest/packages/$name"
  cp "$p/package.json" "$dest/packages/$name/"
  if [ -d "$p/dist/src" ]; then
    mkdir -p "$dest/packages/$name/dist"
    cp -r "$p/dist/src" "$dest/packages/$name/dist/"
    find "$dest/packages/$name/dist/src" \( -name '*.test.js' -o -name '*.test.d.ts' -o -name '*.map' \) -delete
  fi
done
mkdir -p "$dest/packages/protocol/src"
cp -r "$src/packages/protocol/src/gen" "$dest/packages/protocol/src/"
