package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// MaxBodyBytes is the largest REST request body accepted (413 above).
const MaxBodyBytes = 1 << 20

var (
	jsonOut = protojson.MarshalOptions{EmitUnpopulated: true}
	jsonIn  = protojson.UnmarshalOptions{}
)

// NewGateway returns the HTTP handler of a server: REST (grpc-gateway),
// Connect-style POST /<package>.<Service>/<Method> JSON routes, SSE watch,
// /metrics and /healthz. It calls the server's own gRPC endpoint, so every
// REST call goes through the same interceptors (auth, forwarding, metrics);
// creds are the transport credentials of that call (nil: plaintext).
//
// ready, when set, answers GET /readyz: 200 {"ready":true}, or 503 with the
// reason the server cannot serve (no token: load balancers probe it).
func NewGateway(ctx context.Context, grpcAddr string, creds credentials.TransportCredentials, gatherer prometheus.Gatherer, log *slog.Logger, ready func() (bool, string)) (http.Handler, error) {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	go func() { <-ctx.Done(); conn.Close() }()
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &strictJSON{&runtime.JSONPb{MarshalOptions: jsonOut, UnmarshalOptions: jsonIn}}),
		runtime.SetQueryParameterParser(queryParser{}),
		runtime.WithMiddlewares(refuseStrayQuery),
		runtime.WithErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			WriteError(w, bodyRelative(ctx, err))
		}),
		runtime.WithRoutingErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			msg := fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)
			c := codes.NotFound
			if code == http.StatusMethodNotAllowed {
				c, msg = codes.Unimplemented, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)
			}
			writeErrorStatus(w, status.New(c, msg), code)
		}),
		runtime.WithForwardResponseOption(func(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
			if m, ok := runtime.RPCMethod(ctx); ok && strings.HasPrefix(m[strings.LastIndexByte(m, '/')+1:], "Create") {
				w.WriteHeader(http.StatusCreated)
			}
			return nil
		}),
		runtime.WithIncomingHeaderMatcher(func(k string) (string, bool) {
			if strings.EqualFold(k, OrgHeader) {
				return OrgHeader, true
			}
			return runtime.DefaultHeaderMatcher(k)
		}),
		runtime.WithOutgoingHeaderMatcher(func(k string) (string, bool) {
			if strings.HasPrefix(k, "x-atoll-") {
				return k, true
			}
			return "", false
		}),
	)
	for _, reg := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		atollv1.RegisterEnvironmentServiceHandler, atollv1.RegisterProjectServiceHandler,
		atollv1.RegisterOrganizationServiceHandler, atollv1.RegisterTokenServiceHandler,
		atollv1.RegisterOperatorServiceHandler, atollv1.RegisterAppServiceHandler,
		atollv1.RegisterVolumeServiceHandler, atollv1.RegisterVariableSetServiceHandler,
		atollv1.RegisterFileServiceHandler, atollv1.RegisterNodeServiceHandler,
		atollv1.RegisterReleaseServiceHandler, atollv1.RegisterBlueprintServiceHandler,
	} {
		if err := reg(ctx, gw, conn); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if ready != nil {
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
			ok, reason := ready()
			body := map[string]any{"ready": ok}
			code := http.StatusOK
			if !ok {
				body["reason"], code = reason, http.StatusServiceUnavailable
			}
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, code, body)
		})
	}
	mux.Handle("GET /v1/environments/{id}/watch", &sseWatch{conn: conn, log: log})
	mux.Handle("POST /{method...}", connectHandler(conn, gw))
	mux.Handle("/", streamErrors(gw))
	// Aliases are rewritten before routing, so they reach every route (the
	// SSE watch too, which is not a grpc-gateway route).
	return validUTF8(limitBody(rewriteAliases(mux, conn))), nil
}

// validUTF8 refuses a request whose path or query is not valid UTF-8 once
// unescaped (e.g. /v1/environments/%ff): such values cannot travel in a
// protobuf string, and the gRPC call failed with INTERNAL (500).
func validUTF8(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad := ""
		if !utf8.ValidString(r.URL.Path) {
			bad = "path"
		}
		for k, vs := range r.URL.Query() {
			if !utf8.ValidString(k) {
				bad = "query parameter name"
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					bad = "query parameter " + strconv.Quote(strings.ToValidUTF8(k, "?"))
				}
			}
		}
		if bad != "" {
			writeErrorStatus(w, status.Newf(codes.InvalidArgument, "the request %s is not valid UTF-8", bad), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rewriteAliases serves the seeds' paths: /environments/... and /api/v1/...
// as /v1/...; /api/environments/... (Blueberry, compat_blueberry.go) and
// /v1/orgs/... (MechaMental, compat_mechamental.go) through their
// compatibility layers.
func rewriteAliases(next http.Handler, conn *grpc.ClientConn) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/api/v1/"):
			r.URL.Path = "/v1/" + strings.TrimPrefix(p, "/api/v1/")
		case p == "/api/environments" || strings.HasPrefix(p, "/api/environments/"):
			serveBlueberry(w, r, next, conn)
			return
		case p == "/environments" || strings.HasPrefix(p, "/environments/"):
			r.URL.Path = "/v1" + p
		case strings.HasPrefix(p, "/v1/orgs/"):
			serveMechaMental(w, r, next, conn)
			return
		}
		r.URL.RawPath = ""
		next.ServeHTTP(w, r)
	})
}

// OrgHeader carries the organization named in an org-scoped path
// (/v1/orgs/{org}/...); the authenticator refuses it unless it is the
// caller's own (by id or slug), with NOT_FOUND.
const OrgHeader = "x-atoll-org"

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		tooLarge := func() {
			writeErrorStatus(w, status.Newf(codes.ResourceExhausted, "request body larger than %d bytes", MaxBodyBytes), http.StatusRequestEntityTooLarge)
		}
		if r.ContentLength > MaxBodyBytes {
			tooLarge()
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				tooLarge()
				return
			}
			writeErrorStatus(w, status.Newf(codes.InvalidArgument, "reading request body: %v", err), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// httpStatus maps a gRPC status to the REST status (documented in docs/api.md).
func httpStatus(st *status.Status) int {
	switch st.Code() {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted, codes.FailedPrecondition:
		return http.StatusConflict
	case codes.ResourceExhausted:
		for _, d := range st.Details() {
			if _, ok := d.(*errdetails.QuotaFailure); ok {
				return http.StatusUnprocessableEntity
			}
		}
		return http.StatusTooManyRequests
	case codes.OutOfRange:
		return http.StatusGone
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	}
	return http.StatusInternalServerError
}

// CodeName is the canonical upper-case name of a gRPC code (NOT_FOUND, ...).
func CodeName(c codes.Code) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "UNKNOWN"
}

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
	codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
	codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
	codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

// WriteError renders err as the REST error body {"code","message","details"}.
func WriteError(w http.ResponseWriter, err error) {
	st := status.Convert(inputViolation(err))
	writeErrorStatus(w, st, httpStatus(st))
}

type fieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

func writeErrorStatus(w http.ResponseWriter, st *status.Status, code int) {
	writeErrorNamed(w, st, code, CodeName(st.Code()))
}

// writeErrorNamed is writeErrorStatus with the code spelled as given (Connect
// clients read lowercase names).
func writeErrorNamed(w http.ResponseWriter, st *status.Status, code int, name string) {
	details := map[string]any{}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			var fv []fieldViolation
			for _, v := range d.FieldViolations {
				fv = append(fv, fieldViolation{v.Field, v.Description})
			}
			details["fieldViolations"] = fv
		case *errdetails.ErrorInfo:
			details["reason"] = d.Reason
			for k, v := range d.Metadata {
				details[k] = v
			}
		case *errdetails.ResourceInfo:
			details["resourceType"] = d.ResourceType
			details["resourceId"] = d.ResourceName
		case *errdetails.PreconditionFailure:
			var pf []map[string]string
			for _, v := range d.Violations {
				pf = append(pf, map[string]string{"type": v.Type, "subject": v.Subject, "description": v.Description})
			}
			details["preconditionFailures"] = pf
		case *errdetails.QuotaFailure:
			for _, v := range d.Violations {
				details["quotaSubject"] = v.Subject
			}
		}
	}
	body := map[string]any{"code": name, "message": st.Message(), "details": details, "status": code}
	if st.Code() == codes.InvalidArgument && len(details) == 0 && strings.Contains(st.Message(), "proto") {
		body["message"] = "invalid request body: " + st.Message()
	}
	b, _ := jsonMarshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// connectHandler serves POST /<pkg>.<Service>/<Method> with a JSON request
// body (Connect's unary JSON protocol); "teabar.v1" is accepted as an alias
// of "atoll.v1", except that its DeleteEnvironment purges (Teabar's API
// promises a permanent delete). Other POSTs go to the REST gateway.
func connectHandler(conn *grpc.ClientConn, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc, method, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if !ok || !strings.Contains(svc, ".") || strings.Contains(method, "/") {
			rest.ServeHTTP(w, r)
			return
		}
		// A Connect client (it sends Connect-Protocol-Version) reads the
		// code in lowercase ("not_found").
		lower := r.Header.Get("Connect-Protocol-Version") != ""
		failStatus := func(st *status.Status, code int) {
			name := CodeName(st.Code())
			if lower {
				name = strings.ToLower(name)
			}
			writeErrorNamed(w, st, code, name)
		}
		fail := func(err error) {
			st := status.Convert(inputViolation(err))
			failStatus(st, httpStatus(st))
		}
		teabar := false
		if p, ok := strings.CutPrefix(svc, "teabar.v1."); ok {
			svc, teabar = "atoll.v1."+p, true
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		sd, isSvc := d.(protoreflect.ServiceDescriptor)
		if err != nil || !isSvc || !strings.HasPrefix(svc, "atoll.v1.") {
			failStatus(status.Newf(codes.Unimplemented, "unknown service %q", svc), http.StatusNotFound)
			return
		}
		md := sd.Methods().ByName(protoreflect.Name(method))
		if md == nil {
			failStatus(status.Newf(codes.Unimplemented, "service %s has no method %q", svc, method), http.StatusNotFound)
			return
		}
		if md.IsStreamingClient() {
			failStatus(status.Newf(codes.Unimplemented, "%s streams from the client: use gRPC", method), http.StatusNotImplemented)
			return
		}
		if md.IsStreamingServer() {
			connectServerStream(w, r, conn, "/"+svc+"/"+method, md, fail)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, out, err := decodeConnectRequest(md, body)
		if err != nil {
			fail(err)
			return
		}
		if d, ok := req.(*atollv1.DeleteEnvironmentRequest); ok && teabar {
			// Teabar documents DeleteEnvironment as a permanent delete;
			// atoll.v1 (and REST) stay soft unless purge is asked for.
			d.Purge = true
		}
		resp := out.New().Interface()
		if err := conn.Invoke(outgoingAuth(r), "/"+svc+"/"+method, req, resp); err != nil {
			fail(err)
			return
		}
		b, err := jsonOut.Marshal(resp)
		if err != nil {
			fail(err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

// connectServerStream serves a server-streaming method with Connect's
// streaming protocol (what a Connect client's `for await (const ev of
// client.watchEnvironment(...))` speaks): the request is one enveloped JSON
// message (or, for curl, a plain JSON body), the response a sequence of
// enveloped JSON messages ended by an end-of-stream envelope carrying the
// error, if any. An envelope is a flags byte and a 4-byte big-endian length.
func connectServerStream(w http.ResponseWriter, r *http.Request, conn *grpc.ClientConn, fullMethod string, md protoreflect.MethodDescriptor, fail func(error)) {
	flusher, _ := w.(http.Flusher)
	enveloped := strings.HasPrefix(r.Header.Get("Content-Type"), "application/connect+")
	started := false
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/connect+json")
			w.WriteHeader(http.StatusOK)
		}
	}
	envelope := func(flags byte, b []byte) {
		start()
		var hdr [5]byte
		hdr[0] = flags
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
		_, _ = w.Write(hdr[:])
		_, _ = w.Write(b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	// end closes the stream; an error travels in the end frame, as a Connect
	// client expects (for a plain JSON request, before anything was sent, it
	// is an ordinary error response).
	end := func(err error) {
		if err == nil || errors.Is(err, io.EOF) {
			envelope(0x02, []byte("{}"))
			return
		}
		if !enveloped && !started {
			fail(err)
			return
		}
		st := status.Convert(err)
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": strings.ToLower(CodeName(st.Code())), "message": st.Message()}})
		envelope(0x02, b)
	}
	body, _ := io.ReadAll(r.Body)
	if enveloped {
		if len(body) < 5 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 || body[0]&0x01 != 0 {
			end(apierr.InvalidField("body", "must be one uncompressed Connect envelope: a flags byte (0), a 4-byte big-endian length, then the JSON message"))
			return
		}
		body = body[5:]
	}
	req, out, err := decodeConnectRequest(md, body)
	if err != nil {
		end(err)
		return
	}
	ctx, cancel := context.WithCancel(outgoingAuth(r))
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullMethod)
	if err != nil {
		end(err)
		return
	}
	if err := stream.SendMsg(req); err != nil {
		end(err)
		return
	}
	if err := stream.CloseSend(); err != nil {
		end(err)
		return
	}
	for {
		msg := out.New().Interface()
		if err := stream.RecvMsg(msg); err != nil {
			end(err)
			return
		}
		b, err := jsonOut.Marshal(msg)
		if err != nil {
			end(err)
			return
		}
		envelope(0x00, b)
	}
}

// decodeConnectRequest decodes a Connect request body (JSON; empty is the
// zero message) into the method's input and returns its output type.
func decodeConnectRequest(md protoreflect.MethodDescriptor, body []byte) (proto.Message, protoreflect.MessageType, error) {
	in, err1 := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	out, err2 := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err1 != nil || err2 != nil {
		return nil, nil, status.Error(codes.Internal, "message types not registered")
	}
	req := in.New().Interface()
	if len(bytes.TrimSpace(body)) > 0 {
		if err := jsonIn.Unmarshal(body, req); err != nil {
			if ie, ok := bodyError(body, req, err).(*inputError); ok {
				return nil, nil, apierr.InvalidField(ie.field, "%s", ie.desc)
			}
			return nil, nil, status.Errorf(codes.InvalidArgument, "invalid JSON for %s: %v", md.Input().FullName(), err)
		}
	}
	return req, out, nil
}

func outgoingAuth(r *http.Request) context.Context {
	md := metadata.MD{}
	if a := r.Header.Get("Authorization"); a != "" {
		md.Set("authorization", a)
	}
	if o := r.Header.Get(OrgHeader); o != "" {
		md.Set(OrgHeader, o)
	}
	return metadata.NewOutgoingContext(r.Context(), md)
}

// sseWatch serves WatchEnvironment as Server-Sent Events. Each event's id is
// its raft index; a reconnecting client sends Last-Event-ID (or ?fromIndex=)
// to resume. GET /v1/environments/-/watch?projectId=... watches a project.
type sseWatch struct {
	conn *grpc.ClientConn
	log  *slog.Logger
}

func (h *sseWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := &atollv1.WatchEnvironmentRequest{ProjectId: r.URL.Query().Get("projectId")}
	if id := r.PathValue("id"); id != "-" {
		req.EnvironmentId = id
	}
	from := r.Header.Get("Last-Event-ID")
	if q := r.URL.Query().Get("fromIndex"); q != "" {
		from = q
	}
	if from != "" {
		n, err := strconv.ParseUint(from, 10, 64)
		if err != nil {
			WriteError(w, apierr.InvalidField("fromIndex", "must be a raft index (a non-negative integer; also accepted as the Last-Event-ID header), got %q", truncate(from, 40)))
			return
		}
		req.FromIndex = n
	}
	ctx, cancel := context.WithCancel(outgoingAuth(r))
	defer cancel()
	stream, err := atollv1.NewEnvironmentServiceClient(h.conn).WatchEnvironment(ctx, req)
	if err != nil {
		WriteError(w, err)
		return
	}
	type item struct {
		ev  *atollv1.EnvironmentEvent
		err error
	}
	ch := make(chan item, 16)
	go func() {
		for {
			ev, err := stream.Recv()
			select {
			case ch <- item{ev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Errors before the first event (auth, not found, compacted) get a normal JSON error.
	var first item
	select {
	case first = <-ch:
		if first.err != nil {
			if first.err == io.EOF {
				return
			}
			WriteError(w, first.err)
			return
		}
	case <-time.After(200 * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(ev *atollv1.EnvironmentEvent) bool {
		b, err := jsonOut.Marshal(ev)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Index, ev.EventType, b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if first.ev != nil && !send(first.ev) {
		return
	}
	if flusher != nil {
		flusher.Flush()
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case it := <-ch:
			if it.err != nil {
				if it.err != io.EOF {
					st := status.Convert(it.err)
					fmt.Fprintf(w, "event: error\ndata: {\"code\":%q,\"message\":%q}\n\n", CodeName(st.Code()), st.Message())
				}
				return
			}
			if !send(it.ev) {
				return
			}
		}
	}
}

// strictJSON is the gateway's JSON marshaler with a strict request decoder:
// the body is one JSON value (data after it is INVALID_ARGUMENT), and a value
// protojson refuses is reported as a violation of the field it is in.
type strictJSON struct{ *runtime.JSONPb }

func (m *strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		raw, err := oneJSONValue(b)
		if err != nil {
			return err // io.EOF for an empty body, which the gateway accepts
		}
		if messageOf(v) != nil && raw[0] != '{' && string(raw) != "null" {
			return errors.New("request body: must be a JSON object")
		}
		if err := m.JSONPb.Unmarshal(raw, v); err != nil {
			return bodyError(raw, v, err)
		}
		return nil
	})
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// oneJSONValue returns the JSON value b holds: io.EOF if b is empty (or
// white space), an error if it is not JSON or has data after the value.
func oneJSONValue(b []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("request body is not valid JSON: %v", err)
	}
	for _, c := range b[dec.InputOffset():] {
		if !isJSONSpace(c) {
			return nil, errors.New("request body: unexpected data after the JSON object")
		}
	}
	return raw, nil
}

// inputError is a bad value of one request field found while decoding the
// body or the query. The gateway turns every decoding error into
// INVALID_ARGUMENT with the error's text as the message, so the field is
// carried in the text (fieldErrRe) and inputViolation restores it.
type inputError struct{ field, desc string }

func (e *inputError) Error() string {
	return fmt.Sprintf("invalid request: field %q: %s", e.field, e.desc)
}

var fieldErrRe = regexp.MustCompile(`^invalid request: field ("(?:[^"\\]|\\.)*"): ((?s:.*))$`)

// inputViolation turns the text of an inputError back into an
// INVALID_ARGUMENT with the field violation; other errors are returned as is.
func inputViolation(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument || len(st.Details()) > 0 {
		return err
	}
	m := fieldErrRe.FindStringSubmatch(st.Message())
	if m == nil {
		return err
	}
	field, uerr := strconv.Unquote(m[1])
	if uerr != nil {
		return err
	}
	return apierr.InvalidField(field, "%s", m[2])
}

var protoErrPos = regexp.MustCompile(`\(line (\d+):(\d+)\): (.*)$`)

// bodyError explains a protojson error of raw decoded into v as a violation
// of the field at the error's position (lowerCamelCase path and the rule);
// err unchanged when it cannot.
func bodyError(raw []byte, v any, err error) error {
	m := protoErrPos.FindStringSubmatch(err.Error())
	md := messageOf(v)
	if m == nil || md == nil {
		return err
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	off := offsetOf(raw, line, col)
	if off < 0 {
		return err
	}
	at, ok := jsonSlotAt(raw, off, md)
	if !ok || at.path == "" {
		return err
	}
	msg := m[3]
	switch {
	case strings.HasPrefix(msg, "unknown field"):
		return &inputError{at.path, "unknown field"}
	case strings.HasPrefix(msg, "duplicate field"):
		return &inputError{at.path, "is given twice"}
	case at.key || at.fd == nil:
		return &inputError{at.path, msg}
	case strings.HasPrefix(msg, "invalid ") || strings.HasPrefix(msg, "unexpected token"):
		return &inputError{at.path, expected(at.fd, at.elem) + ", got " + at.got}
	}
	return &inputError{at.path, msg}
}

// messageOf is the descriptor of the message v (a message or a pointer to one) decodes into.
func messageOf(v any) protoreflect.MessageDescriptor {
	if p, ok := v.(proto.Message); ok {
		return p.ProtoReflect().Descriptor()
	}
	rt := reflect.TypeOf(v)
	for rt != nil && rt.Kind() == reflect.Pointer {
		if rt.Implements(reflect.TypeFor[proto.Message]()) {
			return reflect.Zero(rt).Interface().(proto.Message).ProtoReflect().Descriptor()
		}
		rt = rt.Elem()
	}
	return nil
}

// offsetOf is the byte offset of protojson's line:column (columns count runes).
func offsetOf(b []byte, line, col int) int {
	i := 0
	for l := 1; l < line; l++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
	}
	for c := 1; c < col && i < len(b); c++ {
		_, n := utf8.DecodeRune(b[i:])
		i += n
	}
	return i
}

// jsonSlot is a place in a JSON document: its field path, the field there
// (nil: unknown), whether it is a list element or map value, whether the
// position is the field's key, and the value found there (for messages).
type jsonSlot struct {
	path string
	fd   protoreflect.FieldDescriptor
	elem bool
	key  bool
	got  string
}

// jsonSlotAt walks raw (the JSON of a message md) to the token at byte
// offset off and says which field it belongs to.
func jsonSlotAt(raw []byte, off int, md protoreflect.MessageDescriptor) (jsonSlot, bool) {
	type frame struct {
		obj     bool
		md      protoreflect.MessageDescriptor // an object of a message
		fd      protoreflect.FieldDescriptor   // a map object or a list
		path    string
		wantKey bool
		key     jsonSlot // the current member's slot
		idx     int
	}
	join := func(parent, name string) string {
		if parent == "" {
			return name
		}
		return parent + "." + name
	}
	var stack []*frame
	// slot is where the next value goes.
	slot := func() jsonSlot {
		if len(stack) == 0 {
			return jsonSlot{}
		}
		f := stack[len(stack)-1]
		if f.obj {
			return f.key
		}
		return jsonSlot{path: fmt.Sprintf("%s[%d]", f.path, f.idx), fd: f.fd, elem: true}
	}
	done := func() {
		if len(stack) == 0 {
			return
		}
		f := stack[len(stack)-1]
		f.wantKey = true
		f.idx++
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return jsonSlot{}, false
		}
		end := int(dec.InputOffset())
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.wantKey {
			if _, ok := tok.(json.Delim); ok { // '}'
				stack = stack[:len(stack)-1]
				done()
				continue
			}
			name, _ := tok.(string)
			s := jsonSlot{path: join(top.path, name), key: true}
			switch {
			case top.md != nil:
				fd := top.md.Fields().ByJSONName(name)
				if fd == nil {
					fd = top.md.Fields().ByName(protoreflect.Name(name))
				}
				if fd != nil {
					s.fd, s.path = fd, join(top.path, fd.JSONName())
				}
			case top.fd != nil && top.fd.IsMap():
				s.fd, s.elem = top.fd, true
			}
			if off < end {
				return s, true
			}
			s.key = false
			top.key, top.wantKey = s, false
			continue
		}
		s := slot()
		if len(stack) == 0 {
			s = jsonSlot{}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if off < end {
					s.got = map[json.Delim]string{'{': "an object", '[': "an array"}[t]
					return s, true
				}
				f := &frame{obj: t == '{', path: s.path, wantKey: true}
				switch {
				case len(stack) == 0:
					f.md = md
				case s.fd == nil:
				case (s.fd.IsList() || s.fd.IsMap()) && !s.elem:
					f.fd = s.fd
				case s.fd.IsMap() && s.elem:
					if mv := s.fd.MapValue(); mv.Message() != nil {
						f.md = mv.Message()
					}
				case s.fd.Message() != nil:
					f.md = s.fd.Message()
				}
				stack = append(stack, f)
			default: // ']'
				stack = stack[:len(stack)-1]
				done()
			}
		default:
			if off < end {
				b, _ := json.Marshal(t)
				s.got = truncate(string(b), 60)
				return s, true
			}
			done()
		}
	}
}

// expected says what a JSON value of field fd (an element of it: elem) must be.
func expected(fd protoreflect.FieldDescriptor, elem bool) string {
	switch {
	case fd.IsList() && !elem:
		return "must be an array"
	case fd.IsMap() && !elem:
		return "must be an object"
	case fd.IsMap():
		fd = fd.MapValue()
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "must be a string"
	case protoreflect.BoolKind:
		return "must be true or false"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "must be a 32-bit integer"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "must be a non-negative 32-bit integer"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "must be an integer"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "must be a non-negative integer"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "must be a number"
	case protoreflect.BytesKind:
		return "must be base64-encoded bytes"
	case protoreflect.EnumKind:
		var names []string
		vs := fd.Enum().Values()
		for i := 0; i < vs.Len(); i++ {
			names = append(names, string(vs.Get(i).Name()))
		}
		return "must be one of " + strings.Join(names, ", ")
	}
	switch fd.Message().FullName() {
	case "google.protobuf.Timestamp":
		return `must be an RFC 3339 timestamp such as "2026-01-02T15:04:05Z"`
	case "google.protobuf.Duration":
		return `must be a duration in seconds such as "90s"`
	case "google.protobuf.FieldMask":
		return `must be a comma-separated list of field names such as "name,description"`
	case "google.protobuf.Struct":
		return "must be an object"
	case "google.protobuf.Value":
		return "must be a JSON value"
	}
	return "must be an object"
}

// queryParser is the gateway's query parameter parser: a bad value is a
// violation of the parameter's field, named in lowerCamelCase.
type queryParser struct{}

func (queryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	// limit is the seeds' name for the page size where a request has no
	// limit of its own (Blueberry, MechaMental).
	md0 := msg.ProtoReflect().Descriptor()
	if values.Has("limit") {
		if _, fd := queryField(md0, "limit"); fd == nil {
			if _, ps := queryField(md0, "pageSize"); ps != nil {
				values = maps.Clone(values)
				if !values.Has("pageSize") && !values.Has("page_size") {
					values["pageSize"] = values["limit"]
				}
				delete(values, "limit")
			}
		}
	}
	// An unknown parameter is refused like an unknown body field, so a typo
	// (?stauts=ERROR) is not a silently unfiltered answer.
	unknown := []string{}
	for k := range values {
		if _, fd := queryField(md0, k); fd == nil {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return &inputError{truncate(unknown[0], 60), "unknown query parameter"}
	}
	def := &runtime.DefaultQueryParser{}
	err := def.Parse(msg, values, filter)
	if err == nil {
		return nil
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	md := msg.ProtoReflect().Descriptor()
	for _, k := range keys {
		e := def.Parse(msg.ProtoReflect().New().Interface(), url.Values{k: values[k]}, filter)
		if e == nil {
			continue
		}
		path, fd := queryField(md, k)
		switch {
		case strings.HasPrefix(e.Error(), "too many values"):
			return &inputError{path, "must be given once"}
		case fd == nil:
			return &inputError{path, e.Error()}
		}
		desc := expected(fd, true)
		if vs := values[k]; len(vs) == 1 {
			desc += ", got " + strconv.Quote(truncate(vs[0], 60))
		}
		return &inputError{path, desc}
	}
	if m := regexp.MustCompile(`^duplicate field "(.*)"$`).FindStringSubmatch(err.Error()); m != nil {
		path, _ := queryField(md, m[1])
		return &inputError{path, "is given twice (by its JSON name and its proto name)"}
	}
	return err
}

var queryKeyRe = regexp.MustCompile(`^(.*)(\[.*\])$`)

// queryField resolves a query parameter name (a.b.c, proto or JSON names,
// maybe with [key]) to its lowerCamelCase path and field (nil: unknown).
func queryField(md protoreflect.MessageDescriptor, key string) (string, protoreflect.FieldDescriptor) {
	suffix := ""
	if m := queryKeyRe.FindStringSubmatch(key); m != nil {
		key, suffix = m[1], m[2]
	}
	var names []string
	var fd protoreflect.FieldDescriptor
	segs := strings.Split(key, ".")
	for i, seg := range segs {
		if md == nil {
			return strings.Join(append(names, segs[i:]...), ".") + suffix, nil
		}
		fd = md.Fields().ByJSONName(seg)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(seg))
		}
		if fd == nil {
			return strings.Join(append(names, segs[i:]...), ".") + suffix, nil
		}
		names = append(names, fd.JSONName())
		md = fd.Message()
	}
	return strings.Join(names, ".") + suffix, fd
}

// streamErrors renders the error of a server-streaming REST route (app logs)
// that fails before its first message as every other REST error, instead of
// grpc-gateway's {"error":{...}} chunk.
func streamErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &streamErrWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		sw.finish()
	})
}

// streamErrWriter holds back a response whose status is an error, to
// rewrite it in finish if it is a grpc-gateway stream error chunk.
type streamErrWriter struct {
	http.ResponseWriter
	started bool
	code    int // an error status held back
	buf     bytes.Buffer
}

func (s *streamErrWriter) WriteHeader(code int) {
	if s.started {
		return
	}
	s.started = true
	if code >= 400 {
		s.code = code
		return
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *streamErrWriter) Write(b []byte) (int, error) {
	if !s.started {
		s.WriteHeader(http.StatusOK)
	}
	if s.code != 0 {
		return s.buf.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

func (s *streamErrWriter) Flush() {
	if s.code != 0 {
		return
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *streamErrWriter) finish() {
	if s.code == 0 {
		return
	}
	var chunk map[string]json.RawMessage
	if json.Unmarshal(s.buf.Bytes(), &chunk) == nil && len(chunk) == 1 && chunk["error"] != nil {
		sp := &spb.Status{}
		if err := jsonIn.Unmarshal(chunk["error"], sp); err == nil {
			s.ResponseWriter.Header().Del("Transfer-Encoding")
			WriteError(s.ResponseWriter, status.ErrorProto(sp))
			return
		}
	}
	s.ResponseWriter.WriteHeader(s.code)
	_, _ = s.ResponseWriter.Write(s.buf.Bytes())
}
