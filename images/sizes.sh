#!/bin/bash
# Prints each image's size (bench/RESULTS.md, "Container images"): uncompressed (the layers'
# unpacked bytes, as `podman images` counts them) and as pushed (the layers gzip'd, the form a
# registry stores and a node downloads), from the local image store:
#
#   images/sizes.sh [IMAGE:TAG...]   default: iotistic/{billing-exporter,provisioner}:<version>
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^project([A-Za-z_]* VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
images=("$@")
((${#images[@]} > 0)) || images=("iotistic/billing-exporter:$version" "iotistic/provisioner:$version")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-40s %14s %14s %8s\n' image uncompressed gzip-layers layers
for image in "${images[@]}"; do
  uncompressed=$(podman image inspect --format '{{.Size}}' "$image")
  rm -rf "$work/oci"
  buildah push --quiet --compression-format gzip "$image" "oci:$work/oci:x" >/dev/null
  manifest=$(/usr/bin/python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); print(i["manifests"][0]["digest"].split(":")[1])' "$work/oci/index.json")
  read -r gzipped layers < <(/usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum(l["size"] for l in m["layers"]), len(m["layers"]))' "$work/oci/blobs/sha256/$manifest")
  awk -v i="$image" -v u="$uncompressed" -v g="$gzipped" -v l="$layers" \
    'BEGIN { printf "%-40s %10.1f MiB %10.1f MiB %8d\n", i, u / 1048576, g / 1048576, l }'
done
