package controlplane_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// v2Fixture is one server with an environment holding two volumes and two
// files, and clients for apps, volumes and files.
type v2Fixture struct {
	f     *apiFixture
	ctx   context.Context
	env   *atollv1.Environment
	apps  atollv1.AppServiceClient
	vols  atollv1.VolumeServiceClient
	files atollv1.FileServiceClient
	vol1  *atollv1.Volume // "my-data-volume"
	vol2  *atollv1.Volume // "other-volume"
	file1 *atollv1.File   // "nginx.conf"
	file2 *atollv1.File   // "other.conf"
}

func newV2Fixture(t *testing.T) *v2Fixture {
	t.Helper()
	f := newAPIFixture(t)
	conn := cptest.Conn(t, f.srv)
	x := &v2Fixture{f: f, ctx: f.ctx, apps: atollv1.NewAppServiceClient(conn),
		vols: atollv1.NewVolumeServiceClient(conn), files: atollv1.NewFileServiceClient(conn)}
	var err error
	if x.env, err = f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "validation2"}); err != nil {
		t.Fatal(err)
	}
	mkVol := func(name string) *atollv1.Volume {
		v, err := x.vols.CreateVolume(f.ctx, &atollv1.CreateVolumeRequest{EnvId: x.env.Id, Volume: &atollv1.Volume{Name: name, Size: "100Mi"}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mkFile := func(name string) *atollv1.File {
		fl, err := x.files.CreateFile(f.ctx, &atollv1.CreateFileRequest{EnvId: x.env.Id, File: &atollv1.File{Name: name, Text: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		return fl
	}
	x.vol1, x.vol2 = mkVol("my-data-volume"), mkVol("other-volume")
	x.file1, x.file2 = mkFile("nginx.conf"), mkFile("other.conf")
	return x
}

// v2App is a valid app to start each case from.
func v2App(name string) *atollv1.App {
	return &atollv1.App{
		Name:             name,
		Source:           &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "latest"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "128Mi"},
	}
}

// v2WantViolation checks err is INVALID_ARGUMENT with a field violation on
// field whose description contains each of subs.
func v2WantViolation(t *testing.T, err error, field string, subs ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT on %s, got %v", field, err)
	}
	var fields []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.FieldViolations {
			fields = append(fields, v.Field+": "+v.Description)
			if v.Field != field {
				continue
			}
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(v.Description, s)
			}
			if ok {
				return
			}
		}
	}
	t.Fatalf("no violation on %s mentioning %q; violations: %q", field, subs, fields)
}

// v2NoApp checks no app named name exists in the environment.
func (x *v2Fixture) v2NoApp(t *testing.T, name string) {
	t.Helper()
	_, err := x.apps.GetApp(x.ctx, &atollv1.GetAppRequest{EnvId: x.env.Id, AppId: name})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("refused app %q was written (GetApp: %v)", name, err)
	}
}

func (x *v2Fixture) create(app *atollv1.App) (*atollv1.App, error) {
	return x.apps.CreateApp(x.ctx, &atollv1.CreateAppRequest{EnvId: x.env.Id, App: app})
}

// Defect 1: mount paths the runtime refuses ("must be clean and not /")
// are refused by the API, on create and on update.
func TestValidation2MountPaths(t *testing.T) {
	x := newV2Fixture(t)
	for _, c := range []struct {
		name, path, field string
		file              bool
		subs              []string
	}{
		{"fm-root", "/", "fileMounts[0].mountPath", true, []string{"must not be /"}},
		{"fm-dotdot", "/etc/../nginx.conf", "fileMounts[0].mountPath", true, []string{"clean", "/nginx.conf"}},
		{"fm-trailing", "/etc/nginx/", "fileMounts[0].mountPath", true, []string{"clean", "/etc/nginx"}},
		{"fm-double", "/etc//nginx.conf", "fileMounts[0].mountPath", true, []string{"clean"}},
		{"fm-dot", "/etc/./nginx.conf", "fileMounts[0].mountPath", true, []string{"clean"}},
		{"fm-relative", "etc/nginx.conf", "fileMounts[0].mountPath", true, []string{"absolute"}},
		{"fm-empty", "", "fileMounts[0].mountPath", true, []string{"absolute"}},
		{"vm-root", "/", "volumeMounts[0].path", false, []string{"must not be /"}},
		{"vm-dotdot", "/data/..", "volumeMounts[0].path", false, []string{"clean"}},
		{"vm-trailing", "/data/", "volumeMounts[0].path", false, []string{"clean", "/data"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := v2App(c.name)
			if c.file {
				app.FileMounts = []*atollv1.FileMount{{FileNameRef: "nginx.conf", MountPath: c.path}}
			} else {
				app.VolumeMounts = []*atollv1.VolumeMount{{VolNameRef: "my-data-volume", Path: c.path}}
			}
			_, err := x.create(app)
			v2WantViolation(t, err, c.field, c.subs...)
			x.v2NoApp(t, c.name)
		})
	}
	// Every bad mount is listed, not only the first.
	app := v2App("many")
	app.FileMounts = []*atollv1.FileMount{{FileNameRef: "nginx.conf", MountPath: "/"}, {FileNameRef: "other.conf", MountPath: "/etc/"}}
	app.VolumeMounts = []*atollv1.VolumeMount{{VolNameRef: "my-data-volume", Path: "/"}}
	_, err := x.create(app)
	v2WantViolation(t, err, "fileMounts[0].mountPath", "must not be /")
	v2WantViolation(t, err, "fileMounts[1].mountPath", "clean")
	v2WantViolation(t, err, "volumeMounts[0].path", "must not be /")

	// Good paths still pass; an update to "/" is refused and changes nothing.
	app = v2App("good")
	app.FileMounts = []*atollv1.FileMount{{FileNameRef: "nginx.conf", MountPath: "/etc/nginx/nginx.conf"}}
	app.VolumeMounts = []*atollv1.VolumeMount{{VolNameRef: "my-data-volume", Path: "/var/lib/data"}}
	good, err := x.create(app)
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.apps.UpdateApp(x.ctx, &atollv1.UpdateAppRequest{EnvId: x.env.Id, AppId: good.Id,
		App:        &atollv1.App{FileMounts: []*atollv1.FileMount{{FileNameRef: "nginx.conf", MountPath: "/"}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"fileMounts"}}})
	v2WantViolation(t, err, "fileMounts[0].mountPath", "must not be /")
	got, err := x.apps.GetApp(x.ctx, &atollv1.GetAppRequest{EnvId: x.env.Id, AppId: good.Id})
	if err != nil || got.Version != good.Version || got.FileMounts[0].MountPath != "/etc/nginx/nginx.conf" {
		t.Fatalf("refused update was written: %v %v", got, err)
	}
}

// Defect 2: the public endpoint's app port must be one of the app's ports
// when the app lists ports.
func TestValidation2PublicEndpointPort(t *testing.T) {
	x := newV2Fixture(t)
	app := v2App("pe-missing")
	app.Ports = []*atollv1.Port{{Number: 80}, {Number: 9090, Protocol: "udp"}}
	app.PublicEndpoint = &atollv1.PublicEndpoint{ExternalPort: 443, AppPort: 8080}
	_, err := x.create(app)
	v2WantViolation(t, err, "publicEndpoint.appPort", "must be one of the app's TCP ports", "80", "8080")
	x.v2NoApp(t, "pe-missing")

	// A UDP port does not count: the router speaks HTTP.
	app = v2App("pe-udp")
	app.Ports = []*atollv1.Port{{Number: 80}, {Number: 9090, Protocol: "UDP"}}
	app.PublicEndpoint = &atollv1.PublicEndpoint{AppPort: 9090}
	_, err = x.create(app)
	v2WantViolation(t, err, "publicEndpoint.appPort", "must be one of the app's TCP ports")
	x.v2NoApp(t, "pe-udp")

	// A listed port is accepted; lowercase "tcp" counts as TCP.
	app = v2App("pe-ok")
	app.Ports = []*atollv1.Port{{Number: 8080, Protocol: "tcp"}}
	app.PublicEndpoint = &atollv1.PublicEndpoint{ExternalPort: 443, AppPort: 8080}
	ok, err := x.create(app)
	if err != nil {
		t.Fatal(err)
	}
	// Updating the ports so that the endpoint's port disappears is refused.
	_, err = x.apps.UpdateApp(x.ctx, &atollv1.UpdateAppRequest{EnvId: x.env.Id, AppId: ok.Id,
		App: &atollv1.App{Ports: []*atollv1.Port{{Number: 80}}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"ports"}}})
	v2WantViolation(t, err, "publicEndpoint.appPort", "must be one of the app's TCP ports", "80")
}

// Defect 3: a mount giving both a name and an id of different objects is
// refused; both naming the same object is accepted.
func TestValidation2MountRefPairs(t *testing.T) {
	x := newV2Fixture(t)
	app := v2App("vol-both")
	app.VolumeMounts = []*atollv1.VolumeMount{{VolNameRef: "my-data-volume", VolIdRef: x.vol2.Id, Path: "/data"}}
	_, err := x.create(app)
	v2WantViolation(t, err, "volumeMounts[0]", "give either volNameRef or volIdRef, not both")
	x.v2NoApp(t, "vol-both")

	app = v2App("file-both")
	app.FileMounts = []*atollv1.FileMount{{FileNameRef: "nginx.conf", FileIdRef: x.file2.Id, MountPath: "/etc/nginx.conf"}}
	_, err = x.create(app)
	v2WantViolation(t, err, "fileMounts[0]", "give either fileNameRef or fileIdRef, not both")
	x.v2NoApp(t, "file-both")

	// Names in the id field (accepted alone) count as that object too.
	app = v2App("file-both-names")
	app.FileMounts = []*atollv1.FileMount{{FileNameRef: "nginx.conf", FileIdRef: "other.conf", MountPath: "/etc/nginx.conf"}}
	_, err = x.create(app)
	v2WantViolation(t, err, "fileMounts[0]", "give either fileNameRef or fileIdRef, not both")

	// A name that does not exist next to a good id is refused too.
	app = v2App("vol-ghost")
	app.VolumeMounts = []*atollv1.VolumeMount{{VolNameRef: "ghost", VolIdRef: x.vol1.Id, Path: "/data"}}
	_, err = x.create(app)
	v2WantViolation(t, err, "volumeMounts[0]", "not both")

	// Same object both ways: accepted, resolved to it.
	app = v2App("same")
	app.VolumeMounts = []*atollv1.VolumeMount{{VolNameRef: "my-data-volume", VolIdRef: x.vol1.Id, Path: "/data"}}
	app.FileMounts = []*atollv1.FileMount{{FileNameRef: "nginx.conf", FileIdRef: x.file1.Id, MountPath: "/etc/nginx.conf"}}
	got, err := x.create(app)
	if err != nil {
		t.Fatal(err)
	}
	if got.VolumeMounts[0].VolIdRef != x.vol1.Id || got.FileMounts[0].FileIdRef != x.file1.Id {
		t.Fatalf("mounts resolved to %v %v", got.VolumeMounts, got.FileMounts)
	}
}

// Defect 4: a volume with both size and sizeMb that disagree is refused.
func TestValidation2VolumeSizeAndSizeMb(t *testing.T) {
	x := newV2Fixture(t)
	_, err := x.vols.CreateVolume(x.ctx, &atollv1.CreateVolumeRequest{EnvId: x.env.Id, Volume: &atollv1.Volume{Name: "v", Size: "1Gi", SizeMb: 512}})
	v2WantViolation(t, err, "volume.sizeMb", "give either size or sizeMb", "1024", "512")
	if _, err := x.vols.GetVolume(x.ctx, &atollv1.GetVolumeRequest{EnvId: x.env.Id, VolumeId: "v"}); status.Code(err) != codes.NotFound {
		t.Fatalf("refused volume was written: %v", err)
	}
	// Agreeing values (e.g. a volume read back and sent again) are accepted.
	v, err := x.vols.CreateVolume(x.ctx, &atollv1.CreateVolumeRequest{EnvId: x.env.Id, Volume: &atollv1.Volume{Name: "v", Size: "1Gi", SizeMb: 1024}})
	if err != nil || v.SizeMb != 1024 {
		t.Fatalf("agreeing size and sizeMb: %v %v", v, err)
	}
	// Over REST as reported.
	r := x.f.rest(t, x.f.c.AdminToken)
	code, body := r.do("POST", "/v1/environments/"+x.env.Id+"/volumes", `{"name":"w","size":"1Gi","sizeMb":512}`)
	// The REST body is the volume itself: the field is named as sent.
	if code != 400 || !strings.Contains(body.raw, "INVALID_ARGUMENT") || !strings.Contains(body.raw, `"field":"sizeMb"`) || strings.Contains(body.raw, "volume.sizeMb") {
		t.Fatalf("REST create volume with size and sizeMb: %d %s", code, body.raw)
	}
}

// Defect 5: an update naming replicas with 0 is refused like -3 and 101,
// over gRPC and REST PATCH, and nothing changes.
func TestValidation2UpdateReplicasZero(t *testing.T) {
	x := newV2Fixture(t)
	app := v2App("scale")
	app.Replicas = 3
	cur, err := x.create(app)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int32{0, -3, 101} {
		_, err := x.apps.UpdateApp(x.ctx, &atollv1.UpdateAppRequest{EnvId: x.env.Id, AppId: cur.Id,
			App: &atollv1.App{Replicas: n}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"replicas"}}})
		v2WantViolation(t, err, "replicas", "must be between 1 and 100")
	}
	r := x.f.rest(t, x.f.c.AdminToken)
	path := "/v1/environments/" + x.env.Id + "/apps/scale"
	code, body := r.do("PATCH", path, `{"replicas":0}`)
	if code != 400 || !strings.Contains(body.raw, "INVALID_ARGUMENT") || !strings.Contains(body.raw, "must be between 1 and 100") {
		t.Fatalf("PATCH replicas 0: %d %s", code, body.raw)
	}
	got, err := x.apps.GetApp(x.ctx, &atollv1.GetAppRequest{EnvId: x.env.Id, AppId: cur.Id})
	if err != nil || got.Replicas != 3 || got.Version != cur.Version {
		t.Fatalf("refused update was written: %v %v", got, err)
	}
	// Updates not naming replicas keep them; a valid PATCH works.
	r.must(200, "PATCH", path, `{"labels":{"a":"b"}}`)
	o := r.must(200, "PATCH", path, `{"replicas":2}`)
	if !strings.Contains(o.raw, `"replicas":2`) {
		t.Fatalf("PATCH replicas 2: %s", o.raw)
	}
	// Create keeps replicas 0 (unset) meaning the default, 1.
	d, err := x.create(v2App("default-replicas"))
	if err != nil || d.Replicas != 1 {
		t.Fatalf("create without replicas: %v %v", d, err)
	}
}
