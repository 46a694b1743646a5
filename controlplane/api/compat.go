package api

// Shared plumbing of the seeds' compatibility layers (compat_blueberry.go,
// compat_mechamental.go): they call the REST gateway (or the gRPC API) and
// present the answer in another API's shape. atoll's own routes never go
// through here.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// snakeOut renders a message with its proto (snake_case) field names.
var snakeOut = protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true}

// bufferedResponse holds a response so it can be reshaped.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func newBuffered() *bufferedResponse {
	return &bufferedResponse{header: http.Header{}, code: http.StatusOK}
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

// ok reports a 2xx answer.
func (b *bufferedResponse) ok() bool { return b.code/100 == 2 }

// copyTo writes the held response as it is (errors go through w's reshaping).
func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.code)
	_, _ = w.Write(b.body.Bytes())
}

// decode reads the held JSON answer into m (an atoll message).
func (b *bufferedResponse) decode(m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b.body.Bytes(), m)
}

// serve calls next with r and holds its answer.
func serveBuffered(next http.Handler, r *http.Request) *bufferedResponse {
	rec := newBuffered()
	next.ServeHTTP(rec, r)
	return rec
}

// writeJSON answers code with v encoded as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := jsonMarshal(v)
	if err != nil {
		WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// messageMap is m as a JSON object with atoll's lowerCamelCase names.
func messageMap(m proto.Message) map[string]any {
	out := map[string]any{}
	if b, err := jsonOut.Marshal(m); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out
}

// withSnakeNames is m as a JSON object carrying both atoll's lowerCamelCase
// field names and the proto (snake_case) ones, at every level: the seeds
// that speak snake_case read theirs, atoll's clients keep theirs. Map keys
// (labels, activeDeployments) are data and stay as they are.
func withSnakeNames(m proto.Message) map[string]any {
	out := messageMap(m)
	snake := map[string]any{}
	if b, err := snakeOut.Marshal(m); err == nil {
		_ = json.Unmarshal(b, &snake)
	}
	mergeJSON(out, snake)
	return out
}

// mergeJSON adds to dst what src has and dst lacks, recursively through
// objects and (element by element) arrays of the same length.
func mergeJSON(dst, src map[string]any) {
	for k, sv := range src {
		dv, ok := dst[k]
		if !ok {
			dst[k] = sv
			continue
		}
		switch d := dv.(type) {
		case map[string]any:
			if s, ok := sv.(map[string]any); ok {
				mergeJSON(d, s)
			}
		case []any:
			if s, ok := sv.([]any); ok && len(s) == len(d) {
				for i := range d {
					dm, ok1 := d[i].(map[string]any)
					sm, ok2 := s[i].(map[string]any)
					if ok1 && ok2 {
						mergeJSON(dm, sm)
					}
				}
			}
		}
	}
}

// compatErrors holds an error answer (a JSON body with a status of 400 or
// more) and hands it to reshape before writing it: the seeds' error fields
// are added to atoll's. Successful responses, streams included, pass
// through untouched.
type compatErrors struct {
	http.ResponseWriter
	reshape func(body map[string]any, code int)
	buf     *bytes.Buffer // set when the response is an error
	code    int
}

func (b *compatErrors) WriteHeader(code int) {
	if code >= 400 && b.buf == nil && strings.HasPrefix(b.Header().Get("Content-Type"), "application/json") {
		b.buf, b.code = &bytes.Buffer{}, code
		return
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b *compatErrors) Write(p []byte) (int, error) {
	if b.buf != nil {
		b.buf.Write(p)
		b.flushError()
		return len(p), nil
	}
	return b.ResponseWriter.Write(p)
}

// flushError writes the held error once it is a whole JSON object (error
// bodies are written in one call).
func (b *compatErrors) flushError() {
	body := map[string]any{}
	if json.Unmarshal(b.buf.Bytes(), &body) != nil {
		return // not whole yet
	}
	b.reshape(body, b.code)
	out, _ := jsonMarshal(body)
	b.buf = nil
	b.Header().Del("Content-Length")
	b.ResponseWriter.WriteHeader(b.code)
	_, _ = b.ResponseWriter.Write(out)
}

// finish writes an error body that never became a whole JSON object as it was.
func (b *compatErrors) finish() {
	if b.buf != nil {
		b.ResponseWriter.WriteHeader(b.code)
		_, _ = b.ResponseWriter.Write(b.buf.Bytes())
		b.buf = nil
	}
}

func (b *compatErrors) Flush() {
	if f, ok := b.ResponseWriter.(http.Flusher); ok && b.buf == nil {
		f.Flush()
	}
}

func (b *compatErrors) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// renameViolations renames the fields of an error body's field violations
// (atoll's name -> the name the caller sent, by exact name or by prefix
// "a." / "a/") and rebuilds its message from them.
func renameViolations(body map[string]any, rename func(string) string) {
	d, _ := body["details"].(map[string]any)
	fvs, _ := d["fieldViolations"].([]any)
	if len(fvs) == 0 {
		return
	}
	parts := make([]string, 0, len(fvs))
	changed := false
	for _, x := range fvs {
		fv, ok := x.(map[string]any)
		if !ok {
			continue
		}
		f, _ := fv["field"].(string)
		if nf := rename(f); nf != f {
			fv["field"], f, changed = nf, nf, true
		}
		desc, _ := fv["description"].(string)
		parts = append(parts, f+": "+desc)
	}
	if msg, _ := body["message"].(string); changed && strings.HasPrefix(msg, "invalid request: ") {
		body["message"] = "invalid request: " + strings.Join(parts, "; ")
	}
}
