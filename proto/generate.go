// Package proto holds the API definitions. Regenerate the Go code with
//
//	go generate ./proto/
//
// It needs protoc (Debian: protobuf-compiler, libprotobuf-dev); the plugins are
// pinned by the tool directives in go.mod.
package proto

//go:generate bash gen.sh
