package api

import (
	"context"
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
	protoregistry.GlobalFiles.RangeFilesByPackage("atoll.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			svc := fd.Services().Get(i)
			for j := 0; j < svc.Methods().Len(); j++ {
				m := svc.Methods().Get(j)
				rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				name := "/" + string(svc.FullName()) + "/" + string(m.Name())
				for _, r := range append([]*annotations.HttpRule{rule}, rule.AdditionalBindings...) {
					if r.Body == "" || r.Body == "*" {
						continue
					}
					if f := m.Input().Fields().ByName(protoreflect.Name(r.Body)); f != nil {
						out[name+" "+rulePath(r)] = f.JSONName()
					}
				}
			}
		}
		return true
	})
	return out
})

func rulePath(r *annotations.HttpRule) string {
	switch p := r.Pattern.(type) {
	case *annotations.HttpRule_Get:
		return p.Get
	case *annotations.HttpRule_Post:
		return p.Post
	case *annotations.HttpRule_Put:
		return p.Put
	case *annotations.HttpRule_Patch:
		return p.Patch
	case *annotations.HttpRule_Delete:
		return p.Delete
	}
	return ""
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
