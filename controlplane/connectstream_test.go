package controlplane_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type connectFrame struct {
	flags byte
	msg   map[string]any
}

func readConnectFrame(t *testing.T, r *bufio.Reader) connectFrame {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("read envelope header: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read envelope: %v", err)
	}
	f := connectFrame{flags: hdr[0]}
	if err := json.Unmarshal(b, &f.msg); err != nil {
		t.Fatalf("envelope is not JSON: %v: %q", err, b)
	}
	return f
}

func connectStream(t *testing.T, f *apiFixture, path string, req any) (*http.Response, *bufio.Reader) {
	t.Helper()
	js, _ := json.Marshal(req)
	var body bytes.Buffer
	body.WriteByte(0)
	_ = binary.Write(&body, binary.BigEndian, uint32(len(js)))
	body.Write(js)
	hr, _ := http.NewRequest("POST", "http://"+f.srv.HTTPAddr()+path, &body)
	hr.Header.Set("Content-Type", "application/connect+json")
	hr.Header.Set("Authorization", "Bearer "+f.c.AdminToken)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/connect+json" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: %d %s: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp, bufio.NewReader(resp.Body)
}

// Teabar's WatchEnvironment as a Connect client calls it: a server stream of
// enveloped JSON events over HTTP; errors arrive in the end-of-stream frame.
func TestConnectWatchEnvironmentStream(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "streamed"})
	_, r := connectStream(t, f, "/teabar.v1.EnvironmentService/WatchEnvironment", map[string]any{"environmentId": e.Id})
	first := readConnectFrame(t, r)
	env, _ := first.msg["environment"].(map[string]any)
	if first.flags != 0 || first.msg["eventType"] != "current" || env["id"] != e.Id {
		t.Fatalf("first frame %+v", first)
	}
	if _, err := f.envs.UpdateEnvironment(f.ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: e.Id,
		Environment: &atollv1.Environment{Description: "changed"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}}); err != nil {
		t.Fatal(err)
	}
	next := readConnectFrame(t, r)
	env, _ = next.msg["environment"].(map[string]any)
	if next.flags != 0 || env["description"] != "changed" {
		t.Fatalf("frame after update %+v", next)
	}

	// An unknown environment: the stream ends at once with not_found.
	_, r = connectStream(t, f, "/atoll.v1.EnvironmentService/WatchEnvironment", map[string]any{"environmentId": "env_aaaaaaaaaaaaaaaaaaaaaaaaaa"})
	endFrame := readConnectFrame(t, r)
	errObj, _ := endFrame.msg["error"].(map[string]any)
	if endFrame.flags != 0x02 || errObj["code"] != "not_found" {
		t.Fatalf("end frame %+v, want flags 2 and error not_found", endFrame)
	}
}

// Connect clients read lowercase error codes; a bad streaming request ends
// in an end-of-stream frame rather than a plain HTTP error.
func TestConnectErrorShapes(t *testing.T) {
	f := newAPIFixture(t)
	hr, _ := http.NewRequest("POST", "http://"+f.srv.HTTPAddr()+"/teabar.v1.EnvironmentService/GetEnvironment",
		bytes.NewReader([]byte(`{"environmentId":"env_aaaaaaaaaaaaaaaaaaaaaaaaaa"}`)))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Connect-Protocol-Version", "1")
	hr.Header.Set("Authorization", "Bearer "+f.c.AdminToken)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != 404 || m["code"] != "not_found" {
		t.Fatalf("unary Connect error: %d %v", resp.StatusCode, m)
	}
	_, r := connectStream(t, f, "/teabar.v1.EnvironmentService/WatchEnvironment", map[string]any{"environmentId": "env_aaaaaaaaaaaaaaaaaaaaaaaaaa", "zz": 1})
	endFrame := readConnectFrame(t, r)
	errObj, _ := endFrame.msg["error"].(map[string]any)
	if endFrame.flags != 0x02 || errObj["code"] != "invalid_argument" {
		t.Fatalf("bad streaming request: %+v", endFrame)
	}
}
