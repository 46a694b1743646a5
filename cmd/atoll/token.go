package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func tokenCommand() *command {
	return group("token", "manage API tokens", tokenCreate(), tokenList(), tokenRevoke(), tokenWhoami())
}

func tokenClient(c *call) atollv1.TokenServiceClient { return atollv1.NewTokenServiceClient(c.conn) }

func tokenRow(t *atollv1.Token, now time.Time) []string {
	exp := "never"
	if t.ExpiresAt != nil {
		exp = until(t.ExpiresAt.AsTime(), now)
	}
	if t.Revoked {
		exp = "revoked"
	}
	return []string{t.Id, t.Name, orDash(t.Prefix), strings.Join(t.Scopes, ","), ago(t.GetCreatedAt().AsTime(), now), exp}
}

var tokenHeader = []string{"ID", "NAME", "PREFIX", "SCOPES", "AGE", "EXPIRES"}

func tokenCreate() *command {
	return leaf("token create", "NAME", "create an API token; prints the secret once", 0, 1, func(fs *flag.FlagSet) func(*call) error {
		var scopes multiFlag
		fs.Var(&scopes, "scope", "permission to grant, e.g. env:read, env:write, project:write, token:admin, * (repeatable; required)")
		ttl := fs.String("ttl", "", "lifetime, e.g. 720h (default: no expiry)")
		joinAgent := fs.Bool("join-agent", false, "a token for agents to join with (scope node:agent); prints the `atoll agent` command line")
		return func(c *call) error {
			if *joinAgent {
				scopes = append(scopes, "node:agent")
			}
			if len(c.args) == 0 {
				if !*joinAgent {
					return usagef("usage: atoll token create NAME --scope SCOPE... [flags] (run `atoll token create --help`)")
				}
				c.args = []string{"agent-join"}
			}
			if len(scopes) == 0 {
				return usagef("atoll token create: give at least one --scope (e.g. --scope env:read --scope env:write)")
			}
			var sc []string
			for _, s := range scopes {
				for _, p := range strings.Split(s, ",") {
					if p = strings.TrimSpace(p); p != "" {
						sc = append(sc, p)
					}
				}
			}
			resp, err := tokenClient(c).CreateToken(c.ctx, &atollv1.CreateTokenRequest{Name: c.args[0], Scopes: sc, Ttl: *ttl})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, resp)
			}
			t := resp.GetToken()
			fmt.Fprintf(c.e.stdout, "created token %s (%s) with %s\n\n  %s\n\n", t.GetName(), t.GetId(), strings.Join(t.GetScopes(), ", "), resp.Secret)
			if *joinAgent {
				tlsFlag := ""
				if c.o.ca != "" {
					tlsFlag = " --tls-ca " + c.o.ca
				}
				fmt.Fprintf(c.e.stdout, "start an agent on each host with:\n\n  atoll agent --servers %s --data-dir /var/lib/atoll-agent --join-token %s%s\n\n", agentServers(c), resp.Secret, tlsFlag)
			}
			fmt.Fprintln(c.e.stderr, "warning: this secret is shown only once; store it now (revoke: atoll token revoke "+t.GetId()+")")
			return nil
		}
	})
}

// agentServers lists the gRPC addresses of the cluster's servers for an
// agent's --servers (the address this command used if they cannot be listed).
func agentServers(c *call) string {
	resp, err := atollv1.NewOperatorServiceClient(c.conn).ListRaftPeers(c.ctx, &atollv1.ListRaftPeersRequest{})
	if err != nil {
		return c.o.addr
	}
	var addrs []string
	for _, p := range resp.Peers {
		if p.GrpcAddress != "" {
			addrs = append(addrs, p.GrpcAddress)
		}
	}
	if len(addrs) == 0 {
		return c.o.addr
	}
	return strings.Join(addrs, ",")
}

func tokenList() *command {
	return leaf("token list", "", "list the organization's API tokens", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			resp, err := tokenClient(c).ListTokens(c.ctx, &atollv1.ListTokensRequest{})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				rows := make([][]string, len(resp.Tokens))
				for i, t := range resp.Tokens {
					rows[i] = tokenRow(t, now)
				}
				table(w, tokenHeader, rows)
			})
		}
	})
}

func tokenRevoke() *command {
	return leaf("token revoke", "ID", "revoke an API token", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			if _, err := tokenClient(c).RevokeToken(c.ctx, &atollv1.RevokeTokenRequest{TokenId: c.args[0]}); err != nil {
				return err
			}
			if c.json() {
				fmt.Fprintf(c.e.stdout, "{\"tokenId\": %q, \"revoked\": true}\n", c.args[0])
				return nil
			}
			fmt.Fprintf(c.e.stdout, "revoked token %s\n", c.args[0])
			return nil
		}
	})
}

func tokenWhoami() *command {
	return leaf("token whoami", "", "describe the token in use", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			t, err := tokenClient(c).WhoAmI(c.ctx, &atollv1.WhoAmIRequest{})
			if err != nil {
				return err
			}
			return c.print(t, func(w io.Writer) {
				table(w, append([]string{"ORG"}, tokenHeader...), [][]string{append([]string{t.OrgId}, tokenRow(t, time.Now())...)})
			})
		}
	})
}
