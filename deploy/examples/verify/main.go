// Command verify is an example internal service guarding an endpoint with pkg/verify: only a
// Portcullis token for this service that grants pull on the repository named in the path gets
// through.
//
//	go run ./deploy/examples/verify -portcullis https://auth.example.com -audience registry.example.com
//	curl -H "Authorization: Bearer $TOKEN" localhost:8080/manifests/team/app
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/verify"
)

func main() {
	url := flag.String("portcullis", "http://localhost:5001", "Portcullis's public URL (its discovery document is under it)")
	audience := flag.String("audience", "registry.local", "this service's name: tokens must be for it")
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	v, err := verify.New(verify.Options{URL: *url, Audience: *audience, Logger: log})
	if err != nil {
		log.Error("verify", "err", err)
		os.Exit(1)
	}
	// GET /manifests/<repository> needs pull on that repository.
	need := func(r *http.Request) (string, string, string) {
		return "repository", strings.TrimPrefix(r.URL.Path, "/manifests/"), "pull"
	}
	mux := http.NewServeMux()
	mux.Handle("GET /manifests/", verify.Middleware(v, need, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s, you may pull %s\n", c.Subject, strings.TrimPrefix(r.URL.Path, "/manifests/"))
	})))
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "addr", *listen)
	if err := srv.ListenAndServe(); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
