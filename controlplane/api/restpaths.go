package api

import (
	"context"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/atollhq/atoll/controlplane/apierr"
)

// restBodies maps "<full gRPC method> <REST path pattern>" to the JSON name
// of the request field a REST route takes as its body, for routes whose body
// is one field of the request (`body: "volume"`), read from the
// google.api.http options of the registered services.
var restBodies = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	forEachHTTPRule(func(m protoreflect.MethodDescriptor, r *annotations.HttpRule) {
		if r.Body == "" || r.Body == "*" {
			return
		}
		if f := m.Input().Fields().ByName(protoreflect.Name(r.Body)); f != nil {
			_, path := ruleRoute(r)
			out["/"+string(m.Parent().FullName())+"/"+string(m.Name())+" "+path] = f.JSONName()
		}
	})
	return out
})

// forEachHTTPRule calls fn with every google.api.http rule (additional
// bindings too) of every method of the registered atoll.v1 services.
func forEachHTTPRule(fn func(m protoreflect.MethodDescriptor, r *annotations.HttpRule)) {
	protoregistry.GlobalFiles.RangeFilesByPackage("atoll.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			svc := fd.Services().Get(i)
			for j := 0; j < svc.Methods().Len(); j++ {
				m := svc.Methods().Get(j)
				rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				for _, r := range append([]*annotations.HttpRule{rule}, rule.AdditionalBindings...) {
					fn(m, r)
				}
			}
		}
		return true
	})
}

// ruleRoute is a rule's HTTP method and path template.
func ruleRoute(r *annotations.HttpRule) (method, path string) {
	switch p := r.Pattern.(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	}
	return "", ""
}

// bodyRelative makes the field violations of a REST call name fields as the
// caller wrote them: a route whose body is the request's "volume" field gets
// "sizeMb", not the gRPC request's "volume.sizeMb". gRPC and Connect callers
// send the whole request and keep the full path.
func bodyRelative(ctx context.Context, err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
	method, _ := runtime.RPCMethod(ctx)
	pattern, _ := runtime.HTTPPathPattern(ctx)
	body := restBodies()[method+" "+pattern]
	if body == "" {
		return err
	}
	var vs []apierr.Violation
	changed := false
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			return err // other details would be lost: leave it as it is
		}
		for _, fv := range br.FieldViolations {
			f, cut := strings.CutPrefix(fv.Field, body+".")
			changed = changed || cut
			vs = append(vs, apierr.Violation{Field: f, Description: fv.Description})
		}
	}
	if !changed {
		return err
	}
	return apierr.Invalid(vs...)
}

// restQueryless holds "<HTTP method> <path pattern>" (in grpc-gateway's
// Pattern.String form, "{id=*}") of the REST routes whose request has no
// field left for query parameters: every field is bound by the path, or the
// body is the whole request. grpc-gateway does not parse the query of such a
// route at all, so without this check ?anything would be ignored silently.
var restQueryless = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	forEachHTTPRule(func(m protoreflect.MethodDescriptor, r *annotations.HttpRule) {
		if method, path := ruleRoute(r); method != "" && !takesQuery(m.Input(), r.Body, path) {
			out[method+" "+gatewayPattern(path)] = true
		}
	})
	return out
})

var pathVarRe = regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`)

// takesQuery reports whether a route leaves some request field to the
// query: not the body, not bound by the path. A nested path variable (a.b)
// leaves the rest of a to the query, so it counts as leaving a field.
func takesQuery(in protoreflect.MessageDescriptor, body, path string) bool {
	if body == "*" {
		return false
	}
	bound := map[string]bool{body: true}
	for _, m := range pathVarRe.FindAllStringSubmatch(path, -1) {
		if strings.Contains(m[1], ".") {
			return true
		}
		bound[m[1]] = true
	}
	for i := 0; i < in.Fields().Len(); i++ {
		if !bound[string(in.Fields().Get(i).Name())] {
			return true
		}
	}
	return false
}

// gatewayPattern writes a google.api.http path as grpc-gateway's
// Pattern.String does: "{id}" becomes "{id=*}".
func gatewayPattern(path string) string {
	return pathVarRe.ReplaceAllStringFunc(path, func(v string) string {
		if strings.Contains(v, "=") {
			return v
		}
		return v[:len(v)-1] + "=*}"
	})
}

// refuseStrayQuery is a gateway middleware: a query parameter on a route
// that takes none (restQueryless) is refused like an unknown parameter
// elsewhere (400 naming it), not ignored.
func refuseStrayQuery(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if r.URL.RawQuery != "" {
			if pat, ok := runtime.HTTPPattern(r.Context()); ok && restQueryless()[r.Method+" "+pat.String()] {
				if names := slices.Sorted(maps.Keys(r.URL.Query())); len(names) > 0 {
					WriteError(w, apierr.InvalidField(truncate(names[0], 60), "unknown query parameter: %s %s takes no query parameters", r.Method, r.URL.Path))
					return
				}
			}
		}
		next(w, r, params)
	}
}
