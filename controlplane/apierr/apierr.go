// Package apierr builds the control plane's errors: gRPC status errors with
// machine-readable details (field violations, the missing permission, the
// exhausted quota dimension). The REST gateway renders the same details as
// JSON, so every client sees one error model.
package apierr

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Domain is the ErrorInfo domain of atoll errors.
const Domain = "atoll.dev"

// Violation is one invalid field of a request.
type Violation struct {
	Field       string // lowerCamelCase path, e.g. resourceQuota.cpu
	Description string // the rule that was broken
}

// Violations collects field violations; Err returns nil when there are none.
type Violations []Violation

// Add records a violation.
func (v *Violations) Add(field, format string, args ...any) {
	*v = append(*v, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Err is an INVALID_ARGUMENT error listing every violation, or nil.
func (v Violations) Err() error {
	if len(v) == 0 {
		return nil
	}
	return Invalid(v...)
}

// Invalid is INVALID_ARGUMENT listing each bad field and the rule it broke.
func Invalid(vs ...Violation) error {
	parts := make([]string, 0, len(vs))
	br := &errdetails.BadRequest{}
	for _, v := range vs {
		parts = append(parts, v.Field+": "+v.Description)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	msg := "invalid request: " + strings.Join(parts, "; ")
	return with(status.New(codes.InvalidArgument, msg), br)
}

// InvalidReason is InvalidField with a machine-readable reason (ErrorInfo).
func InvalidReason(reason, field, format string, args ...any) error {
	d := fmt.Sprintf(format, args...)
	st := status.New(codes.InvalidArgument, "invalid request: "+field+": "+d)
	return with(st, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: d}}},
		&errdetails.ErrorInfo{Reason: reason, Domain: Domain})
}

// InvalidField is INVALID_ARGUMENT for one field.
func InvalidField(field, format string, args ...any) error {
	return Invalid(Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// NotFound says an object of kind with id does not exist (or is not visible).
func NotFound(kind, id string) error {
	st := status.Newf(codes.NotFound, "%s %q not found", kind, id)
	return with(st, &errdetails.ResourceInfo{ResourceType: kind, ResourceName: id})
}

// AlreadyExists says an object with that name already exists in its parent.
func AlreadyExists(kind, field, value, parent string) error {
	st := status.Newf(codes.AlreadyExists, "%s with %s %q already exists in %s", kind, field, value, parent)
	return with(st, &errdetails.ResourceInfo{ResourceType: kind, ResourceName: value, Description: field + " must be unique in " + parent})
}

// FailedPrecondition says the operation is not allowed in the object's current state.
func FailedPrecondition(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

// Deleted says the operation needs a live object but this one is
// soft-deleted (it is still visible to Get and can be restored).
func Deleted(kind, id, restore string) error {
	st := status.Newf(codes.FailedPrecondition, "%s %q is deleted; restore it first (%s)", kind, id, restore)
	return with(st, &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: "DELETED", Subject: kind + "/" + id, Description: kind + " must not be deleted; restore it first",
	}}})
}

// EnvDeleted is Deleted for an environment.
func EnvDeleted(id string) error {
	return Deleted("environment", id, "POST /v1/environments/"+id+"/restore, or atoll env restore "+id)
}

// Aborted says a concurrent change won (optimistic concurrency); retry.
func Aborted(format string, args ...any) error {
	return status.Errorf(codes.Aborted, format, args...)
}

// QuotaExceeded is RESOURCE_EXHAUSTED naming the dimension, what was asked and what is left.
func QuotaExceeded(scope, dimension, unit string, requested, available int64) error {
	st := status.Newf(codes.ResourceExhausted,
		"%s quota exceeded for %s: requested %d%s, available %d%s", scope, dimension, requested, unit, available, unit)
	return with(st, &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
		Subject:     scope + ":" + dimension,
		Description: fmt.Sprintf("requested %d%s, available %d%s", requested, unit, available, unit),
	}}}, &errdetails.ErrorInfo{Reason: "QUOTA_EXCEEDED", Domain: Domain, Metadata: map[string]string{
		"scope": scope, "dimension": dimension,
		"requested": fmt.Sprint(requested), "available": fmt.Sprint(available), "unit": unit,
	}})
}

// Unauthenticated says the request has no valid token.
func Unauthenticated(msg string) error {
	return status.Error(codes.Unauthenticated, msg)
}

// PermissionDenied names the permission the token lacks.
func PermissionDenied(permission string) error {
	st := status.Newf(codes.PermissionDenied, "permission denied: this token lacks the %q permission", permission)
	return with(st, &errdetails.ErrorInfo{Reason: "MISSING_PERMISSION", Domain: Domain, Metadata: map[string]string{"requiredPermission": permission}})
}

// Compacted says a watch asked for history that is no longer retained.
func Compacted(from, oldest uint64) error {
	st := status.Newf(codes.OutOfRange,
		"events after index %d are compacted (oldest retained is %d): list the objects again and watch from the index of that list", from, oldest)
	return with(st, &errdetails.ErrorInfo{Reason: "COMPACTED", Domain: Domain, Metadata: map[string]string{"oldestIndex": fmt.Sprint(oldest)}})
}

// Unavailable says the cluster cannot serve the request right now (no leader).
func Unavailable(format string, args ...any) error {
	return status.Errorf(codes.Unavailable, format, args...)
}

func with(st *status.Status, details ...protoadapt.MessageV1) error {
	if s, err := st.WithDetails(details...); err == nil {
		return s.Err()
	}
	return st.Err()
}
