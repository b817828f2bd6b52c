package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// benchEnumeration prints how long wrong passwords take for a known and an unknown user. The
// lockout is off: it would answer the wrong passwords with 429 before long, without checking
// them, and what is compared is the password check.
func benchEnumeration(bin, dir string) error {
	_, err := withServer(bin, dir, scenario{scopes: 1, noLockout: true}, "", func(url string) (result, error) {
		return result{}, enumeration(url)
	})
	return err
}

// enumeration compares how long a wrong password takes for a known and for an unknown user:
// they should match, so response time does not reveal who has an account.
func enumeration(base string) error {
	c := newClient(1)
	url := tokenURL(base, 1)
	median := func(user string) (time.Duration, error) {
		var lat []time.Duration
		for i := 0; i < 25; i++ {
			req, _ := http.NewRequest("GET", url, nil)
			req.SetBasicAuth(user, fmt.Sprintf("wrong-%d", i))
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				return 0, fmt.Errorf("status %d for a wrong password", resp.StatusCode)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		return lat[len(lat)/2], nil
	}
	known, err := median("bench")
	if err != nil {
		return err
	}
	unknown, err := median("no-such-user")
	if err != nil {
		return err
	}
	fmt.Printf("wrong password, median of 25: known user %s, unknown user %s (should match: no user enumeration)\n",
		known.Round(100*time.Microsecond), unknown.Round(100*time.Microsecond))
	return nil
}
