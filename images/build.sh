#!/bin/bash
# `make images`: builds iotistic/billing-exporter, iotistic/provisioner and iotistic/mosquitto with buildah into the
# local image store (no Docker engine, no registry needed), tagged with the project version
# (project(VERSION) in CMakeLists.txt) and the git revision:
#
#   images/build.sh [IMAGE...]      IMAGE: billing-exporter, provisioner, mosquitto (default: all)
#
# Base images (the Containerfiles' FROM lines) that are not in the local store are made from
# Debian's packages with mmdebstrap and imported under the same name; with a registry, pull them
# first (buildah pull debian:bookworm) and this step is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh buildah podman mmdebstrap

images=("$@")
((${#images[@]} > 0)) || images=(billing-exporter provisioner mosquitto)
version=$(sed -n 's/^project([A-Za-z_]* VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[[ -n $version ]] || { echo "images: no project(... VERSION x.y.z) in CMakeLists.txt" >&2; exit 1; }
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

# debian:SUITE from mmdebstrap's minbase (what the official image holds: essential packages and
# apt); debian:SUITE-slim is the same without documentation, man pages and locales.
make_base() {
  local name=$1 suite=${1#*:} options=()
  if [[ $suite == *-slim ]]; then
    suite=${suite%-slim}
    options=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
             --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*')
  fi
  local tar
  tar=$(mktemp --suffix=.tar)
  echo "images: $name is not in the local store; making it with mmdebstrap" >&2
  mmdebstrap --quiet --variant=minbase "${options[@]}" "$suite" "$tar"
  podman import --quiet "$tar" "$name" >/dev/null
  rm -f "$tar"
}

for image in "${images[@]}"; do
  file=images/$image.Containerfile
  [[ -f $file ]] || { echo "images: no $file" >&2; exit 2; }
  for base in $(awk 'toupper($1) == "FROM" && $2 != "scratch" {print $2}' "$file" | sort -u); do
    buildah inspect --type image "$base" >/dev/null 2>&1 || make_base "$base"
  done
done

for image in "${images[@]}"; do
  echo "images: building iotistic/$image:$version (revision $revision)" >&2
  # --layers: the package layer the two Containerfiles share is built once and reused.
  # The version and revision labels are also given with --label: buildah 1.28 reuses a cached
  # LABEL step of a multi-stage build whose ARG changed (the broker image's content is the same
  # from one commit to the next, so it kept the first revision's label); --label is applied to
  # the final image every time.
  buildah bud --quiet --isolation chroot --layers --pull=never \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --label org.opencontainers.image.version="$version" \
    --label org.opencontainers.image.revision="$revision" \
    -f "images/$image.Containerfile" -t "iotistic/$image:$version" -t "iotistic/$image:$revision" .
  labelled=$(buildah inspect --type image \
    --format '{{index .OCIv1.Config.Labels "org.opencontainers.image.revision"}}' "iotistic/$image:$revision")
  [[ $labelled == "$revision" ]] || {
    echo "images: iotistic/$image:$revision is labelled revision $labelled" >&2
    exit 1
  }
done
buildah images --filter reference='iotistic/*'
