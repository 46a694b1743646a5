package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Volumes, variable sets and files: objects of an environment that apps mount.

func volumeCommand() *command {
	return group("volume", "manage an environment's volumes (persistent data mounted by apps)",
		volumeCreate(), volumeList(), volumeGet(), volumeDelete())
}

func varsetCommand() *command {
	return group("varset", "manage an environment's variable sets (env vars for apps; secrets masked)",
		varsetCreate(), varsetList(), varsetGet(), varsetSet(), varsetUnset(), varsetDelete())
}

func fileCommand() *command {
	return group("file", "manage an environment's files (mounted read-only into apps)",
		fileCreate(), fileList(), fileGet(), fileUpdate(), fileDelete())
}

func volumeClient(c *call) atollv1.VolumeServiceClient { return atollv1.NewVolumeServiceClient(c.conn) }
func varsetClient(c *call) atollv1.VariableSetServiceClient {
	return atollv1.NewVariableSetServiceClient(c.conn)
}
func fileClient(c *call) atollv1.FileServiceClient { return atollv1.NewFileServiceClient(c.conn) }

func mountedBy(apps []string) string {
	if len(apps) == 0 {
		return "-"
	}
	return strings.Join(apps, ",")
}

func printRows(w io.Writer, rows [][]string) {
	tw := tableWriter(w)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func printDeleted(c *call, kind, name string) error {
	if c.json() {
		fmt.Fprintf(c.e.stdout, "{%q: %q, \"deleted\": true}\n", kind, name)
		return nil
	}
	fmt.Fprintf(c.e.stdout, "deleted %s %s\n", kind, name)
	return nil
}

// ---- volumes

func volumeCreate() *command {
	return leaf("volume create", "NAME", "create a volume (its size counts against the environment's storage quota)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		size := fs.String("size", "", "size, "+memHelp+" (required)")
		return func(c *call) error {
			if *size == "" {
				return usagef("atoll volume create: --size is required (e.g. --size 1Gi)")
			}
			mb, err := parseMB("size", *size)
			if err != nil {
				return usagef("--size: %v", err)
			}
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			v, err := volumeClient(c).CreateVolume(c.ctx, &atollv1.CreateVolumeRequest{EnvId: envID, Volume: &atollv1.Volume{Name: c.args[0], SizeMb: mb}})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, v)
			}
			fmt.Fprintf(c.e.stdout, "created volume %s (%s) %s\n", v.Name, v.Id, fmtMB(v.SizeMb))
			return nil
		}
	})
}

func volumeList() *command {
	return leaf("volume list", "", "list an environment's volumes", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			resp, err := volumeClient(c).ListVolumes(c.ctx, &atollv1.ListVolumesRequest{EnvId: envID})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				names := map[string]string{}
				for _, v := range resp.Volumes {
					if v.NodeId != "" {
						names = nodeNames(c)
						break
					}
				}
				rows := make([][]string, len(resp.Volumes))
				for i, v := range resp.Volumes {
					rows[i] = []string{v.Name, v.Id, fmtMB(v.SizeMb), nodeName(names, v.NodeId), mountedBy(v.MountedBy), ago(v.GetCreatedAt().AsTime(), now)}
				}
				table(w, []string{"NAME", "ID", "SIZE", "NODE", "MOUNTED BY", "AGE"}, rows)
			})
		}
	})
}

func volumeGet() *command {
	return leaf("volume get", "NAME|ID", "show a volume", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			v, err := volumeClient(c).GetVolume(c.ctx, &atollv1.GetVolumeRequest{EnvId: envID, VolumeId: c.args[0]})
			if err != nil {
				return err
			}
			return c.print(v, func(w io.Writer) {
				printRows(w, [][]string{
					{"ID:", v.Id}, {"Name:", v.Name}, {"Environment:", v.EnvId}, {"Size:", fmtMB(v.SizeMb)},
					{"Node:", orDash(v.NodeId)}, {"Mounted by:", mountedBy(v.MountedBy)},
					{"Created:", fmt.Sprintf("%s ago by %s", ago(v.GetCreatedAt().AsTime(), time.Now()), orDash(v.CreatedBy))},
				})
			})
		}
	})
}

func volumeDelete() *command {
	return leaf("volume delete", "NAME|ID", "delete a volume and its data (refused while an app mounts it)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			if _, err := volumeClient(c).DeleteVolume(c.ctx, &atollv1.DeleteVolumeRequest{EnvId: envID, VolumeId: c.args[0]}); err != nil {
				return err
			}
			return printDeleted(c, "volume", c.args[0])
		}
	})
}

// ---- variable sets

func varsetCreate() *command {
	return leaf("varset create", "NAME", "create a variable set: its variables become env vars of the apps that mount it", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		var vars, secrets multiFlag
		fs.Var(&vars, "var", "variable KEY=VALUE (repeatable)")
		fs.Var(&secrets, "secret", "secret variable KEY=VALUE, masked in every response (repeatable)")
		return func(c *call) error {
			m := map[string]*atollv1.Variable{}
			for _, kv := range vars {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--var %q: want KEY=VALUE", kv)
				}
				m[k] = &atollv1.Variable{Value: v}
			}
			for _, kv := range secrets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--secret %q: want KEY=VALUE", kv)
				}
				m[k] = &atollv1.Variable{Value: v, Secret: true}
			}
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			vs, err := varsetClient(c).CreateVariableSet(c.ctx, &atollv1.CreateVariableSetRequest{EnvId: envID,
				VariableSet: &atollv1.VariableSet{Name: c.args[0], Variables: m}})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, vs)
			}
			fmt.Fprintf(c.e.stdout, "created variable set %s (%s) with %d variable(s)\n", vs.Name, vs.Id, len(vs.Variables))
			return nil
		}
	})
}

func varsetList() *command {
	return leaf("varset list", "", "list an environment's variable sets", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			resp, err := varsetClient(c).ListVariableSets(c.ctx, &atollv1.ListVariableSetsRequest{EnvId: envID})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				rows := make([][]string, len(resp.VariableSets))
				for i, v := range resp.VariableSets {
					rows[i] = []string{v.Name, v.Id, strconv.Itoa(len(v.Variables)), mountedBy(v.MountedBy), ago(v.GetCreatedAt().AsTime(), now)}
				}
				table(w, []string{"NAME", "ID", "VARIABLES", "MOUNTED BY", "AGE"}, rows)
			})
		}
	})
}

func varsetGet() *command {
	return leaf("varset get", "NAME|ID", "show a variable set (secret values masked)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			vs, err := varsetClient(c).GetVariableSet(c.ctx, &atollv1.GetVariableSetRequest{EnvId: envID, VariableSetId: c.args[0]})
			if err != nil {
				return err
			}
			return c.print(vs, func(w io.Writer) {
				printRows(w, [][]string{
					{"ID:", vs.Id}, {"Name:", vs.Name}, {"Environment:", vs.EnvId}, {"Version:", strconv.FormatInt(vs.Version, 10)},
					{"Mounted by:", mountedBy(vs.MountedBy)},
					{"Created:", fmt.Sprintf("%s ago by %s", ago(vs.GetCreatedAt().AsTime(), time.Now()), orDash(vs.CreatedBy))},
				})
				fmt.Fprintln(w)
				keys := make([]string, 0, len(vs.Variables))
				for k := range vs.Variables {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				rows := make([][]string, len(keys))
				for i, k := range keys {
					v := vs.Variables[k]
					sec := ""
					if v.Secret {
						sec = "yes"
					}
					rows[i] = []string{k, v.Value, orDash(sec)}
				}
				table(w, []string{"KEY", "VALUE", "SECRET"}, rows)
			})
		}
	})
}

// rollingSummary says what an update of a variable set or file did: its
// new version and the apps that roll onto it, or that nothing changed.
func rollingSummary(kind, name string, before, after int64, rolling []string) string {
	if after == before {
		return fmt.Sprintf("%s %s unchanged (version %d): no app rolls\n", kind, name, after)
	}
	apps := "no app mounts it: nothing rolls"
	if len(rolling) > 0 {
		what := "values"
		if kind == "file" {
			what = "content"
		}
		apps = fmt.Sprintf("rolling %d app(s) onto it: %s (running instances keep the old %s until they are replaced; `atoll app get APP` shows the rollout)",
			len(rolling), strings.Join(rolling, ", "), what)
	}
	return fmt.Sprintf("updated %s %s to version %d; %s\n", kind, name, after, apps)
}

func varsetSet() *command {
	return leaf("varset set", "NAME [KEY=VALUE...] [--secret KEY=VALUE...]", "set (add or change) variables of a set; the apps mounting it roll onto the new values", 1, -1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		var secrets multiFlag
		fs.Var(&secrets, "secret", "secret variable KEY=VALUE, masked in every response (repeatable), as in varset create")
		version := fs.Int64("if-version", 0, "only if the set is at this version (optimistic concurrency)")
		return func(c *call) error {
			set := map[string]*atollv1.Variable{}
			for _, kv := range c.args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("atoll varset set: %q: want KEY=VALUE", kv)
				}
				set[k] = &atollv1.Variable{Value: v}
			}
			for _, kv := range secrets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("atoll varset set: --secret %q: want KEY=VALUE", kv)
				}
				set[k] = &atollv1.Variable{Value: v, Secret: true}
			}
			if len(set) == 0 {
				return usagef("atoll varset set: nothing to set: give KEY=VALUE or --secret KEY=VALUE")
			}
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			return varsetUpdate(c, &atollv1.UpdateVariableSetRequest{EnvId: envID, VariableSetId: c.args[0], Set: set, ExpectedVersion: *version})
		}
	})
}

func varsetUnset() *command {
	return leaf("varset unset", "NAME KEY...", "remove variables from a set; the apps mounting it roll", 2, -1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		version := fs.Int64("if-version", 0, "only if the set is at this version (optimistic concurrency)")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			return varsetUpdate(c, &atollv1.UpdateVariableSetRequest{EnvId: envID, VariableSetId: c.args[0], Remove: c.args[1:], ExpectedVersion: *version})
		}
	})
}

func varsetUpdate(c *call, req *atollv1.UpdateVariableSetRequest) error {
	cur, err := varsetClient(c).GetVariableSet(c.ctx, &atollv1.GetVariableSetRequest{EnvId: req.EnvId, VariableSetId: req.VariableSetId})
	if err != nil {
		return err
	}
	vs, err := varsetClient(c).UpdateVariableSet(c.ctx, req)
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.e.stdout, vs)
	}
	fmt.Fprint(c.e.stdout, rollingSummary("variable set", vs.Name, cur.Version, vs.Version, vs.RollingApps))
	return nil
}

func varsetDelete() *command {
	return leaf("varset delete", "NAME|ID", "delete a variable set (refused while an app mounts it)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			if _, err := varsetClient(c).DeleteVariableSet(c.ctx, &atollv1.DeleteVariableSetRequest{EnvId: envID, VariableSetId: c.args[0]}); err != nil {
				return err
			}
			return printDeleted(c, "varset", c.args[0])
		}
	})
}

// ---- files

func fileCreate() *command {
	return leaf("file create", "NAME", "store a file (up to 1 MiB) that apps mount read-only", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		from := fs.String("from", "", "read the content from this local file")
		fs.StringVar(from, "from-file", "", "same as --from")
		text := fs.String("text", "", "the content as text")
		return func(c *call) error {
			set := setFlags(fs)
			fromSet := set["from"] || set["from-file"]
			if fromSet == set["text"] {
				return usagef("atoll file create: give exactly one of --from PATH or --text \"...\"")
			}
			f := &atollv1.File{Name: c.args[0]}
			if fromSet {
				b, err := os.ReadFile(*from)
				if err != nil {
					return err
				}
				f.Content = b
			} else {
				f.Text = *text
			}
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			out, err := fileClient(c).CreateFile(c.ctx, &atollv1.CreateFileRequest{EnvId: envID, File: f})
			if err != nil {
				return err
			}
			if c.json() {
				out.Content = nil
				return printJSON(c.e.stdout, out)
			}
			fmt.Fprintf(c.e.stdout, "created file %s (%s) %d bytes sha256 %s\n", out.Name, out.Id, out.SizeBytes, short12(out.Sha256))
			return nil
		}
	})
}

func short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func fileList() *command {
	return leaf("file list", "", "list an environment's files", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			resp, err := fileClient(c).ListFiles(c.ctx, &atollv1.ListFilesRequest{EnvId: envID})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				rows := make([][]string, len(resp.Files))
				for i, f := range resp.Files {
					rows[i] = []string{f.Name, f.Id, strconv.Itoa(int(f.SizeBytes)), short12(f.Sha256), mountedBy(f.MountedBy), ago(f.GetCreatedAt().AsTime(), now)}
				}
				table(w, []string{"NAME", "ID", "BYTES", "SHA256", "MOUNTED BY", "AGE"}, rows)
			})
		}
	})
}

func fileGet() *command {
	return leaf("file get", "NAME|ID", "show a file; --content prints only its content", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		content := fs.Bool("content", false, "print the content itself (raw bytes)")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			f, err := fileClient(c).GetFile(c.ctx, &atollv1.GetFileRequest{EnvId: envID, FileId: c.args[0]})
			if err != nil {
				return err
			}
			if *content {
				_, err := c.e.stdout.Write(f.Content)
				return err
			}
			return c.print(f, func(w io.Writer) {
				printRows(w, [][]string{
					{"ID:", f.Id}, {"Name:", f.Name}, {"Environment:", f.EnvId},
					{"Size:", strconv.Itoa(int(f.SizeBytes)) + " bytes"}, {"SHA-256:", f.Sha256}, {"Version:", strconv.FormatInt(f.Version, 10)},
					{"Mounted by:", mountedBy(f.MountedBy)},
					{"Created:", fmt.Sprintf("%s ago by %s", ago(f.GetCreatedAt().AsTime(), time.Now()), orDash(f.CreatedBy))},
				})
			})
		}
	})
}

func fileUpdate() *command {
	return leaf("file update", "NAME|ID", "replace a file's content; the apps mounting it roll onto the new content", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		from := fs.String("from", "", "read the new content from this local file")
		fs.StringVar(from, "from-file", "", "same as --from")
		text := fs.String("text", "", "the new content as text")
		version := fs.Int64("if-version", 0, "only if the file is at this version (optimistic concurrency)")
		return func(c *call) error {
			set := setFlags(fs)
			fromSet := set["from"] || set["from-file"]
			if fromSet == set["text"] {
				return usagef("atoll file update: give exactly one of --from PATH or --text \"...\"")
			}
			req := &atollv1.UpdateFileRequest{FileId: c.args[0], ExpectedVersion: *version}
			if fromSet {
				b, err := os.ReadFile(*from)
				if err != nil {
					return err
				}
				req.Content = b
			} else {
				req.Text = *text
			}
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			req.EnvId = envID
			cur, err := fileClient(c).GetFile(c.ctx, &atollv1.GetFileRequest{EnvId: envID, FileId: c.args[0]})
			if err != nil {
				return err
			}
			out, err := fileClient(c).UpdateFile(c.ctx, req)
			if err != nil {
				return err
			}
			if c.json() {
				out.Content = nil
				return printJSON(c.e.stdout, out)
			}
			fmt.Fprint(c.e.stdout, rollingSummary("file", out.Name, cur.Version, out.Version, out.RollingApps))
			return nil
		}
	})
}

func fileDelete() *command {
	return leaf("file delete", "NAME|ID", "delete a file (refused while an app mounts it)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			if _, err := fileClient(c).DeleteFile(c.ctx, &atollv1.DeleteFileRequest{EnvId: envID, FileId: c.args[0]}); err != nil {
				return err
			}
			return printDeleted(c, "file", c.args[0])
		}
	})
}
