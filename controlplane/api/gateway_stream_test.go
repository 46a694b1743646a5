package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// streamErrors passes a stream through as it comes (flushing each chunk),
// and rewrites grpc-gateway's {"error":{...}} chunk answered before any
// message into the REST error body.
func TestStreamErrorsWriter(t *testing.T) {
	stream := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"result":{"line":"a"}}` + "\n"))
		http.NewResponseController(w).Flush()
		_, _ = w.Write([]byte(`{"result":{"line":"b"}}` + "\n"))
	})
	rec := httptest.NewRecorder()
	streamErrors(stream).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/environments/e/apps/a/logs", nil))
	if rec.Code != 200 || !rec.Flushed || rec.Body.String() != `{"result":{"line":"a"}}`+"\n"+`{"result":{"line":"b"}}`+"\n" {
		t.Fatalf("stream: %d flushed=%v %q", rec.Code, rec.Flushed, rec.Body.String())
	}

	failed := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":3,"message":"invalid request: lines: must be between 1 and 1000","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"lines","description":"must be between 1 and 1000"}]}]}}`))
		_, _ = w.Write([]byte("\n"))
	})
	rec = httptest.NewRecorder()
	streamErrors(failed).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/environments/e/apps/a/logs", nil))
	var body struct {
		Code    string
		Message string
		Status  int
		Details struct {
			FieldViolations []struct{ Field, Description string }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%v: %q", err, rec.Body.String())
	}
	if rec.Code != 400 || body.Code != "INVALID_ARGUMENT" || body.Status != 400 || len(body.Details.FieldViolations) != 1 ||
		body.Details.FieldViolations[0].Field != "lines" || rec.Header().Get("Transfer-Encoding") != "" {
		t.Fatalf("error: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}

	// Other error bodies (already in the REST shape) are passed through.
	plain := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":"NOT_FOUND"}`))
	})
	rec = httptest.NewRecorder()
	streamErrors(plain).ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"NOT_FOUND"`) {
		t.Fatalf("plain: %d %q", rec.Code, rec.Body.String())
	}
}
