// Package e2e runs Portcullis against real peers: the CNCF distribution registry 3.1.2
// (.cache/bin/registry3), Debian's distribution 2.8 (docker-registry), and the clients
// skopeo, crane, oras and the docker CLI with its engine; the sign-in suite also ORY Hydra
// v2.3.0 as the company IdP (internal/testenv/hydratest) and Debian's chromium, headless
// (internal/testenv/browsertest), keeping a screenshot of every page it visits as a test
// artifact (go test -artifacts -outputdir DIR, as make e2e does, or $PORTCULLIS_ARTIFACTS).
// Each test's name says which peers it starts.
//
// The tests carry the build tag e2e: run them with `make e2e` or
//
//	go test -tags=e2e -count=1 -v ./e2e/...
//
// They use bin/portcullis (or $PORTCULLIS_BIN), building it when it is missing; the upgrade
// test also builds an earlier release from the clone's git history, which must not be
// shallow. A missing peer binary fails the suite: install the tools with
// scripts/install-tools.sh.
package e2e
