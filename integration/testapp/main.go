// Command testapp is the small static HTTP server that atoll's runtime and
// integration tests run inside containers. It is built with CGO_ENABLED=0 into
// a FROM scratch image by package integration/testimage.
//
// Endpoints (all GET):
//
//	/                          hello + hostname
//	/healthz                   "ok"
//	/env?k=NAME                value of NAME (404 if unset); without k: all env as JSON
//	/file?path=P               contents of file P
//	/stat?path=P               JSON {uid,gid,mode,size} of P
//	/volume/write?path=P&data=D  write D to P (creating parent directories)
//	/volume/read?path=P        contents of P
//	/alloc?mb=N                allocate and touch N MB and keep holding it
//	/burn?ms=N                 burn CPU for N milliseconds
//	/exit?code=N               exit the process with code N (after replying)
//
// Every request is logged to stdout as one line: "request METHOD PATH?QUERY".
// Lines written to stderr start with "testapp:".
//
// The binary also has a few subcommands so the image needs no shell:
//
//	testapp cat PATH       print a file
//	testapp echo ARGS...   print the arguments, one per line
//	testapp id             print "uid=U gid=G"
//	testapp exit N         exit with code N
//	testapp stderr TEXT    print TEXT to stderr
//	testapp emit STEP...   run steps in order: out:TEXT prints TEXT on stdout,
//	                       err:TEXT on stderr, sleep:MS sleeps, exit:N exits with N
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(subcommand(os.Args[1], os.Args[2:]))
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	addr := net.JoinHostPort("", port)
	srv := &http.Server{Addr: addr, Handler: newMux(), ReadHeaderTimeout: 10 * time.Second}
	// As PID 1 the process gets no default signal handling: shut down
	// cleanly on SIGTERM/SIGINT so that a stop is quick and exits 0.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		fmt.Printf("testapp: %v, shutting down\n", sig)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	fmt.Printf("testapp listening on %s\n", addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "testapp: %v\n", err)
		os.Exit(1)
	}
}

func subcommand(name string, args []string) int {
	switch name {
	case "cat":
		for _, p := range args {
			b, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintf(os.Stderr, "testapp: %v\n", err)
				return 1
			}
			os.Stdout.Write(b)
		}
		return 0
	case "echo":
		for _, a := range args {
			fmt.Println(a)
		}
		return 0
	case "id":
		fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
		return 0
	case "exit":
		code := 0
		if len(args) > 0 {
			code, _ = strconv.Atoi(args[0])
		}
		return code
	case "stderr":
		fmt.Fprintln(os.Stderr, strings.Join(args, " "))
		return 0
	case "emit":
		for _, step := range args {
			kind, arg, _ := strings.Cut(step, ":")
			switch kind {
			case "out":
				fmt.Fprintln(os.Stdout, arg)
			case "err":
				fmt.Fprintln(os.Stderr, arg)
			case "sleep":
				ms, _ := strconv.Atoi(arg)
				time.Sleep(time.Duration(ms) * time.Millisecond)
			case "exit":
				code, _ := strconv.Atoi(arg)
				return code
			default:
				fmt.Fprintf(os.Stderr, "testapp: unknown emit step %q\n", step)
				return 2
			}
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown subcommand %q\n", name)
		return 2
	}
}

var (
	heldMu sync.Mutex
	held   [][]byte // memory from /alloc, kept alive on purpose
)

func newMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		host, _ := os.Hostname()
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		// HEALTHZ_STATUS chooses the answer (e.g. 503: a failing check).
		if c, err := strconv.Atoi(os.Getenv("HEALTHZ_STATUS")); err == nil && c >= 100 && c <= 999 {
			w.WriteHeader(c)
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		k := r.URL.Query().Get("k")
		if k == "" {
			all := map[string]string{}
			for _, kv := range os.Environ() {
				name, value, _ := strings.Cut(kv, "=")
				all[name] = value
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(all)
			return
		}
		v, ok := os.LookupEnv(k)
		if !ok {
			http.Error(w, "unset: "+k, http.StatusNotFound)
			return
		}
		io.WriteString(w, v)
	})
	readFile := func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			fileError(w, err)
			return
		}
		w.Write(b)
	}
	mux.HandleFunc("/file", readFile)
	mux.HandleFunc("/volume/read", readFile)
	mux.HandleFunc("/stat", func(w http.ResponseWriter, r *http.Request) {
		fi, err := os.Stat(r.URL.Query().Get("path"))
		if err != nil {
			fileError(w, err)
			return
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		out := map[string]any{"mode": fmt.Sprintf("%04o", fi.Mode().Perm()), "size": fi.Size()}
		if st != nil {
			out["uid"], out["gid"] = st.Uid, st.Gid
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/volume/write", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fileError(w, err)
			return
		}
		if err := os.WriteFile(p, []byte(r.URL.Query().Get("data")), 0o644); err != nil {
			fileError(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/alloc", func(w http.ResponseWriter, r *http.Request) {
		mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
		if err != nil || mb < 0 {
			http.Error(w, "mb must be a non-negative integer", http.StatusBadRequest)
			return
		}
		b := make([]byte, mb<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		heldMu.Lock()
		held = append(held, b)
		heldMu.Unlock()
		fmt.Fprintf(w, "allocated %d MB\n", mb)
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "ms must be a non-negative integer", http.StatusBadRequest)
			return
		}
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		n := 0
		for time.Now().Before(deadline) {
			for i := 0; i < 10000; i++ {
				n += i * i
			}
		}
		fmt.Fprintf(w, "burned %d ms (%d)\n", ms, n%7)
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil {
			http.Error(w, "code must be an integer", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "exiting with %d\n", code)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			os.Exit(code)
		}()
	})
	return logRequests(mux)
}

func fileError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case os.IsNotExist(err):
		code = http.StatusNotFound
	case os.IsPermission(err):
		code = http.StatusForbidden
	}
	http.Error(w, err.Error(), code)
}

func logRequests(next http.Handler) http.Handler {
	l := log.New(os.Stdout, "", 0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.Printf("request %s %s", r.Method, r.URL.RequestURI())
		next.ServeHTTP(w, r)
	})
}
