package main

import "fmt"

// benchSignerReplicas measures the split deployment with 1, 2 and 3 signer replicas behind one
// gateway (gateway.backends.signer lists them; round robin over the healthy ones). On one
// 2-core machine the replicas share the CPUs with everything else, so the ratio shows the
// balancing's overhead more than any gain; on separate machines it is the signing tier's scaling.
func benchSignerReplicas(bin, dir string, o options) error {
	fmt.Printf("\nSigner replicas (split, warm creds, 1 scope; all processes and the load generator on this machine's %d CPUs)\n", numCPU())
	var base float64
	for n := 1; n <= 3; n++ {
		sc := scenario{split: true, scopes: 1, signers: n}
		res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
			return closedLoop(basicGrant(url, sc.scopes), o.conc, o.dur)
		})
		if err != nil {
			return err
		}
		if n == 1 {
			base = res.rate()
		}
		note := ""
		if base > 0 {
			note = fmt.Sprintf("x%.2f of 1 replica", res.rate()/base)
		}
		res.print(fmt.Sprintf("split, %d signer replica(s)", n), note)
	}
	return nil
}
