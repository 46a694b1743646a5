package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func blueprintCommand() *command {
	return group("blueprint", "environment templates with ${variables}: apps, volumes, variable sets, files (create, list, get, delete)",
		blueprintCreate(), blueprintList(), blueprintGet(), blueprintDelete())
}

func blueprintClient(c *call) atollv1.BlueprintServiceClient {
	return atollv1.NewBlueprintServiceClient(c.conn)
}

var blueprintHeader = []string{"ID", "NAME", "VARIABLES", "APPS", "VOLUMES", "VARSETS", "FILES", "TTL", "AGE"}

func blueprintRow(b *atollv1.Blueprint, now time.Time) []string {
	vars := make([]string, len(b.Variables))
	for i, v := range b.Variables {
		vars[i] = v.Name
		if v.Required && v.Default == "" {
			vars[i] += "*"
		}
	}
	return []string{b.Id, b.Name, orDash(strings.Join(vars, ",")), fmt.Sprint(len(b.Apps)), fmt.Sprint(len(b.Volumes)),
		fmt.Sprint(len(b.VariableSets)), fmt.Sprint(len(b.Files)), orDash(b.DefaultTtl), ago(b.GetCreatedAt().AsTime(), now)}
}

func blueprintCreate() *command {
	return leaf("blueprint create", "[NAME]", "create a blueprint from a JSON file (the API's Blueprint: variables, apps, volumes, variableSets, files, resourceQuota, defaultTtl)", 0, 1, func(fs *flag.FlagSet) func(*call) error {
		file := fs.String("f", "", "the blueprint as JSON (required; - reads stdin)")
		return func(c *call) error {
			if *file == "" {
				return usagef("usage: atoll blueprint create -f blueprint.json [NAME]")
			}
			var b []byte
			var err error
			if *file == "-" {
				b, err = io.ReadAll(os.Stdin)
			} else {
				b, err = os.ReadFile(*file)
			}
			if err != nil {
				return err
			}
			bp := &atollv1.Blueprint{}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, bp); err != nil {
				return usagef("-f %s: not a blueprint in JSON: %v", *file, err)
			}
			if len(c.args) == 1 {
				bp.Name = c.args[0]
			}
			out, err := blueprintClient(c).CreateBlueprint(c.ctx, &atollv1.CreateBlueprintRequest{Blueprint: bp})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, out)
			}
			fmt.Fprintf(c.e.stdout, "created blueprint %s (%s): %d app(s), %d volume(s), %d variable set(s), %d file(s)\n",
				out.Name, out.Id, len(out.Apps), len(out.Volumes), len(out.VariableSets), len(out.Files))
			return nil
		}
	})
}

func blueprintList() *command {
	return leaf("blueprint list", "", "list the organization's blueprints (* marks a required variable)", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			resp, err := blueprintClient(c).ListBlueprints(c.ctx, &atollv1.ListBlueprintsRequest{})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				rows := make([][]string, len(resp.Blueprints))
				for i, b := range resp.Blueprints {
					rows[i] = blueprintRow(b, now)
				}
				table(w, blueprintHeader, rows)
			})
		}
	})
}

func blueprintGet() *command {
	return leaf("blueprint get", "ID|NAME", "show a blueprint (-o json: the whole template)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			b, err := blueprintClient(c).GetBlueprint(c.ctx, &atollv1.GetBlueprintRequest{BlueprintId: c.args[0]})
			if err != nil {
				return err
			}
			return c.print(b, func(w io.Writer) {
				table(w, blueprintHeader, [][]string{blueprintRow(b, time.Now())})
				if b.Description != "" {
					fmt.Fprintf(w, "\n%s\n", b.Description)
				}
				if len(b.Variables) > 0 {
					fmt.Fprintln(w)
					rows := make([][]string, len(b.Variables))
					for i, v := range b.Variables {
						rows[i] = []string{v.Name, fmt.Sprint(v.Required), orDash(v.Default), orDash(v.Description)}
					}
					table(w, []string{"VARIABLE", "REQUIRED", "DEFAULT", "DESCRIPTION"}, rows)
				}
				for _, a := range b.Apps {
					img := a.GetSource().GetImage()
					fmt.Fprintf(w, "app %s: %s:%s\n", a.Name, img.GetName(), img.GetTag())
				}
			})
		}
	})
}

func blueprintDelete() *command {
	return leaf("blueprint delete", "ID|NAME", "delete a blueprint (environments made from it stay)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			if _, err := blueprintClient(c).DeleteBlueprint(c.ctx, &atollv1.DeleteBlueprintRequest{BlueprintId: c.args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(c.e.stdout, "deleted blueprint %s\n", c.args[0])
			return nil
		}
	})
}

// parseVars parses repeated --var k=v.
func parseVars(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--var %q: want NAME=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}
