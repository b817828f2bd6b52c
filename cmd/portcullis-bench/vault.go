package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/vaulttest"
)

// benchVault compares signing keys in the split deployment: the local key file, and Vault
// transit with and without batching, with a real Vault server on this machine.
func benchVault(bin, dir string, dur time.Duration, conc, rate int) error {
	return withBenchT(dir, func(vt *benchT) error { return benchVaultWith(vt, bin, dir, dur, conc, rate) })
}

func benchVaultWith(vt *benchT, bin, dir string, dur time.Duration, conc, rate int) error {
	v := vaulttest.Start(vt)
	v.CreateKey(vt, "portcullis", "ecdsa-p256")
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(v.RootToken), 0o600); err != nil {
		return err
	}
	vk := &vaultKey{addr: v.Addr, tokenFile: tokenFile}
	fmt.Printf("\nSigning key: local file vs Vault transit (%s, on this machine), warm credentials, 1 scope:\n", vaultVersion(vaulttest.Binary(vt)))
	for _, sc := range []scenario{
		{split: true, scopes: 1},
		{split: true, scopes: 1, vault: vk},
		{split: true, scopes: 1, vault: vk, noBatch: true},
		{split: false, scopes: 1, vault: vk},
	} {
		var perTrip float64
		res, err := withServerMetrics(bin, dir, sc, func(url string) (result, error) {
			return closedLoop(basicGrant(url, sc.scopes), conc, dur)
		}, &perTrip)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		name := sc.String()
		if sc.vault != nil {
			name += fmt.Sprintf(" [%.1f signs/trip]", perTrip)
		}
		res.print(name)
	}
	sc := scenario{split: true, scopes: 1, vault: vk}
	var perTrip float64
	res, err := withServerMetrics(bin, dir, sc, func(url string) (result, error) {
		return fixedRate(basicGrant(url, sc.scopes), rate, dur)
	}, &perTrip)
	if err != nil {
		return err
	}
	res.print(fmt.Sprintf("%s @%d/s [%.1f signs/trip]", sc, rate, perTrip))
	return nil
}

// withServerMetrics runs f and reads the signer's signs per Vault round trip afterwards.
func withServerMetrics(bin, dir string, sc scenario, f func(url string) (result, error), perTrip *float64) (result, error) {
	return withServerAt(bin, dir, sc, "", func(s server) (result, error) {
		r, err := s.measure(func() (result, error) { return f(s.url) })
		if err == nil {
			*perTrip = signsPerTrip(s.signerMetrics)
		}
		return r, err
	})
}

func signsPerTrip(url string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sigs, trips float64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "portcullis_signer_vault_signatures_total "); ok {
			fmt.Sscan(v, &sigs)
		}
		if v, ok := strings.CutPrefix(line, "portcullis_signer_vault_round_trips_total "); ok {
			fmt.Sscan(v, &trips)
		}
	}
	if trips == 0 {
		return 0
	}
	return sigs / trips
}

func vaultVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "vault"
	}
	return strings.TrimSpace(string(out))
}
