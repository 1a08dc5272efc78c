#!/usr/bin/env bash
# Regenerates Sources/Wire/Generated/*.pb.swift from proto/*.proto with Debian's protoc and
# swift-protobuf's protoc-gen-swift at the version Package.swift pins (built once, cached in
# .build-protoc/). Records the schema's sha256 in the output so a test can tell stale code.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
command -v protoc >/dev/null || { apt-get install -y -qq protobuf-compiler >/dev/null; }
version=$(sed -n 's/.*swift-protobuf", exact: "\([0-9.]*\)".*/\1/p' Package.swift)
plugin=.build-protoc/swift-protobuf-$version/.build/release/protoc-gen-swift
if [ ! -x "$plugin" ]; then
  mkdir -p .build-protoc
  rm -rf ".build-protoc/swift-protobuf-$version"
  git clone -q https://github.com/apple/swift-protobuf ".build-protoc/swift-protobuf-$version"
  git -C ".build-protoc/swift-protobuf-$version" checkout -q "$version"
  (cd ".build-protoc/swift-protobuf-$version" && swift build -c release --product protoc-gen-swift)
fi
out=Sources/Wire/Generated
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public --swift_out="$out" -I proto proto/*.proto
hash=$(cat proto/*.proto | sha256sum | cut -d' ' -f1)
for f in "$out"/*.pb.swift; do
  { echo "// proto-sha256: $hash"; cat "$f"; } > "$f.tmp" && mv "$f.tmp" "$f"
done
echo "generated $(ls "$out") from proto/ ($hash)"
