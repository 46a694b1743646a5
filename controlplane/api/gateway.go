package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
func NewGateway(ctx context.Context, grpcAddr string, creds credentials.TransportCredentials, gatherer prometheus.Gatherer, log *slog.Logger) (http.Handler, error) {
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
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{MarshalOptions: jsonOut, UnmarshalOptions: jsonIn}),
		runtime.WithErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			WriteError(w, err)
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
	mux.Handle("GET /v1/environments/{id}/watch", &sseWatch{conn: conn, log: log})
	mux.Handle("POST /{method...}", connectHandler(conn, gw))
	mux.Handle("/", gw)
	// Aliases are rewritten before routing, so they reach every route (the
	// SSE watch too, which is not a grpc-gateway route).
	return validUTF8(limitBody(rewriteAliases(mux))), nil
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

// rewriteAliases serves the seeds' paths: /environments/... and /api/v1/... as /v1/....
func rewriteAliases(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/api/v1/"):
			r.URL.Path = "/v1/" + strings.TrimPrefix(p, "/api/v1/")
		case p == "/api/environments" || strings.HasPrefix(p, "/api/environments/"):
			r.URL.Path = "/v1" + strings.TrimPrefix(p, "/api")
		case p == "/environments" || strings.HasPrefix(p, "/environments/"):
			r.URL.Path = "/v1" + p
		case strings.HasPrefix(p, "/v1/orgs/"):
			if !rewriteOrgPath(w, r) {
				return
			}
		}
		r.URL.RawPath = ""
		if q := r.URL.Query(); q.Has("limit") && !q.Has("pageSize") && !q.Has("page_size") {
			q.Set("pageSize", q.Get("limit")) // Blueberry's name for the page size
			r.URL.RawQuery = q.Encode()
		}
		next.ServeHTTP(w, r)
	})
}

// OrgHeader carries the organization named in an org-scoped path
// (/v1/orgs/{org}/...); the authenticator refuses it unless it is the
// caller's own (by id or slug), with NOT_FOUND.
const OrgHeader = "x-atoll-org"

// rewriteOrgPath maps the org/workspace-scoped paths of seed 004 onto the
// API: /v1/orgs/{org}/workspaces[/{ws}] are projects, and
// /v1/orgs/{org}/workspaces/{ws}/environments[/...] are the environments of
// project ws. It reports false when it answered the request itself.
func rewriteOrgPath(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/orgs/"), "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] != "workspaces" {
		return true // not a mapped path: the gateway answers 404
	}
	r.Header.Set(OrgHeader, parts[0])
	rest := parts[2:]
	switch {
	case len(rest) <= 1:
		r.URL.Path = "/v1/projects" + strings.TrimSuffix("/"+strings.Join(rest, "/"), "/")
		return true
	case rest[1] != "environments":
		return true
	}
	ws := rest[0]
	envPath := rest[2:]
	r.URL.Path = "/v1/environments" + strings.TrimSuffix("/"+strings.Join(envPath, "/"), "/")
	if len(envPath) > 0 {
		return true
	}
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		q.Set("projectId", ws)
		r.URL.RawQuery = q.Encode()
	case http.MethodPost:
		// The workspace is the project of the new environment.
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		if len(bytes.TrimSpace(body)) == 0 {
			m = map[string]any{}
		} else if err := json.Unmarshal(body, &m); err != nil {
			writeErrorStatus(w, status.Newf(codes.InvalidArgument, "invalid JSON body: %v", err), http.StatusBadRequest)
			return false
		}
		if _, ok := m["projectId"]; !ok {
			if _, ok := m["project_id"]; !ok {
				m["projectId"] = ws
			}
		}
		nb, _ := json.Marshal(m)
		r.Body = io.NopCloser(bytes.NewReader(nb))
		r.ContentLength = int64(len(nb))
	}
	return true
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		tooLarge := func() {
			writeErrorStatus(w, status.Newf(codes.InvalidArgument, "request body larger than %d bytes", MaxBodyBytes), http.StatusRequestEntityTooLarge)
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
	st := status.Convert(err)
	writeErrorStatus(w, st, httpStatus(st))
}

type fieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

func writeErrorStatus(w http.ResponseWriter, st *status.Status, code int) {
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
		case *errdetails.QuotaFailure:
			for _, v := range d.Violations {
				details["quotaSubject"] = v.Subject
			}
		}
	}
	body := map[string]any{"code": CodeName(st.Code()), "message": st.Message(), "details": details, "status": code}
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
// of "atoll.v1". Other POSTs go to the REST gateway.
func connectHandler(conn *grpc.ClientConn, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc, method, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if !ok || !strings.Contains(svc, ".") || strings.Contains(method, "/") {
			rest.ServeHTTP(w, r)
			return
		}
		if p, ok := strings.CutPrefix(svc, "teabar.v1."); ok {
			svc = "atoll.v1." + p
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		sd, isSvc := d.(protoreflect.ServiceDescriptor)
		if err != nil || !isSvc || !strings.HasPrefix(svc, "atoll.v1.") {
			writeErrorStatus(w, status.Newf(codes.Unimplemented, "unknown service %q", svc), http.StatusNotFound)
			return
		}
		md := sd.Methods().ByName(protoreflect.Name(method))
		if md == nil {
			writeErrorStatus(w, status.Newf(codes.Unimplemented, "service %s has no method %q", svc, method), http.StatusNotFound)
			return
		}
		if md.IsStreamingClient() || md.IsStreamingServer() {
			writeErrorStatus(w, status.Newf(codes.Unimplemented, "%s is a streaming method: use gRPC, or the SSE route GET /v1/environments/{id}/watch", method), http.StatusNotImplemented)
			return
		}
		in, err1 := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		out, err2 := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
		if err1 != nil || err2 != nil {
			writeErrorStatus(w, status.New(codes.Internal, "message types not registered"), http.StatusInternalServerError)
			return
		}
		req, resp := in.New().Interface(), out.New().Interface()
		body, _ := io.ReadAll(r.Body)
		if len(bytes.TrimSpace(body)) > 0 {
			if err := jsonIn.Unmarshal(body, req); err != nil {
				writeErrorStatus(w, status.Newf(codes.InvalidArgument, "invalid JSON for %s: %v", md.Input().FullName(), err), http.StatusBadRequest)
				return
			}
		}
		ctx := outgoingAuth(r)
		if err := conn.Invoke(ctx, "/"+svc+"/"+method, req, resp); err != nil {
			WriteError(w, err)
			return
		}
		b, err := jsonOut.Marshal(resp)
		if err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

func outgoingAuth(r *http.Request) context.Context {
	md := metadata.MD{}
	if a := r.Header.Get("Authorization"); a != "" {
		md.Set("authorization", a)
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
		if _, err := fmt.Sscan(from, &req.FromIndex); err != nil {
			writeErrorStatus(w, status.New(codes.InvalidArgument, "fromIndex / Last-Event-ID must be a raft index (a number)"), http.StatusBadRequest)
			return
		}
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
