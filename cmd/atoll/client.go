package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/internal/tlsutil"
)

// defaultAddr is where client commands look for a server (atoll dev's gRPC address).
const defaultAddr = "127.0.0.1:7071"

// clientOpts are the flags every client command takes.
type clientOpts struct {
	addr, token, output string
	// ca: PEM file of the CA of the servers' TLS certificates ("" : plaintext).
	ca string
}

func (o *clientOpts) register(fs *flag.FlagSet, getenv func(string) string) {
	addr := getenv("ATOLL_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	fs.StringVar(&o.addr, "addr", addr, "gRPC address of any atoll server (env ATOLL_ADDR)")
	fs.StringVar(&o.token, "token", getenv("ATOLL_TOKEN"), "API token (env ATOLL_TOKEN)")
	fs.StringVar(&o.ca, "tls-ca", getenv("ATOLL_CACERT"), "CA certificate (PEM) of a server that uses TLS; dial with TLS (env ATOLL_CACERT)")
	fs.StringVar(&o.output, "o", "table", "output: table or json")
}

// dial connects to the server and returns a context carrying the token.
func (o *clientOpts) dial(ctx context.Context) (*grpc.ClientConn, context.Context, error) {
	if o.output != "table" && o.output != "json" {
		return nil, nil, usagef("-o must be table or json, not %q", o.output)
	}
	if o.token == "" {
		return nil, nil, usagef("no API token: set ATOLL_TOKEN (e.g. export ATOLL_TOKEN=$(cat atoll-data/admin.token)) or pass --token")
	}
	creds := insecure.NewCredentials()
	if o.ca != "" {
		cfg, err := tlsutil.ClientConfig(o.ca, "")
		if err != nil {
			return nil, nil, usagef("--tls-ca: %v", err)
		}
		creds = credentials.NewTLS(cfg)
	}
	// Keepalive pings on open streams (watch, logs -f) notice a server
	// that vanished without closing the connection, instead of waiting forever.
	conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second}))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", o.addr, err)
	}
	return conn, metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+o.token), nil
}

// explain turns an API error into a message that says what to do.
func (o *clientOpts) explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		if !connectionError(st.Message()) { // the server answered: it says why
			return fmt.Errorf("unavailable: %s", st.Message())
		}
		return fmt.Errorf("cannot reach %s: %s\n  %s", o.addr, st.Message(), o.unavailableHint(st.Message()))
	case codes.Unauthenticated:
		return fmt.Errorf("%s\n  check ATOLL_TOKEN (a dev server's admin token is in atoll-data/admin.token)", st.Message())
	}
	code := strings.ToLower(strings.ReplaceAll(codeName(st.Code()), "_", " "))
	if st.Code() == codes.PermissionDenied {
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.Metadata["requiredPermission"] != "" {
				return fmt.Errorf("%s\n  use a token with %[2]s (an admin can make one: atoll token create NAME --scope %[2]s)", st.Message(), info.Metadata["requiredPermission"])
			}
		}
	}
	if strings.Contains(strings.ToLower(st.Message()), code) || strings.HasPrefix(st.Message(), "invalid request") {
		return errors.New(st.Message())
	}
	return fmt.Errorf("%s: %s", code, st.Message())
}

// unavailableHint says what to check when the server cannot be reached,
// TLS mismatches included.
func (o *clientOpts) unavailableHint(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case o.ca != "" && (strings.Contains(m, "certificate") || strings.Contains(m, "x509")):
		return "the server's TLS certificate is not trusted: is --tls-ca (ATOLL_CACERT) the CA that signed it, and is the certificate valid for " + o.addr + "?"
	case o.ca != "" && (strings.Contains(m, "tls") || strings.Contains(m, "handshake")):
		return "TLS handshake failed: does the server use TLS? without TLS, drop --tls-ca (ATOLL_CACERT)"
	case o.ca == "" && (strings.Contains(m, "server preface") || strings.Contains(m, "connection reset") || strings.Contains(m, "eof")):
		return "if the server uses TLS, pass its CA certificate with --tls-ca (or ATOLL_CACERT); else is ATOLL_ADDR right?"
	}
	if o.addr == defaultAddr {
		return "is an atoll server running at " + o.addr + "? (`atoll dev` starts one locally; for a cluster, pass --addr or set ATOLL_ADDR)"
	}
	return "check --addr/ATOLL_ADDR: the gRPC address (host:port) of any server of the cluster"
}

// connectionError tells the client library's "could not talk to the server"
// from an UNAVAILABLE the server itself sent (no leader, not in the cluster).
func connectionError(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"connection error", "dial tcp", "connection refused", "connection reset", "no such host",
		"name resolver", "produced zero addresses", "server preface", "transport:", "handshake", "certificate", "x509", "eof", "i/o timeout"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

var jsonOut = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// table writes aligned columns.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tableWriter(w)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func tableWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

var jsonLine = protojson.MarshalOptions{EmitUnpopulated: true}

// codeName is the gRPC code in words: PermissionDenied -> "Permission_Denied".
func codeName(c codes.Code) string {
	n := c.String()
	var b strings.Builder
	for i, r := range n {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}
