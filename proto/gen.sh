#!/usr/bin/env bash
# Regenerates the Go code of proto/atoll/v1 with pinned plugins (go.mod tool directives).
set -euo pipefail
cd "$(dirname "$0")"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN="$bin" go install \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway
include=/usr/include
[ -f "$include/google/protobuf/timestamp.proto" ] || { echo "protoc well-known types missing: apt-get install libprotobuf-dev" >&2; exit 1; }
rm -f atoll/v1/*.pb.go atoll/v1/*.pb.gw.go
protoc -I . -I third_party -I "$include" \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --plugin=protoc-gen-grpc-gateway="$bin/protoc-gen-grpc-gateway" \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  --grpc-gateway_out=. --grpc-gateway_opt=paths=source_relative \
  atoll/v1/*.proto
