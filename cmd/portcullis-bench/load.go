package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// benchScope is the i-th scope a Basic row asks for.
func benchScope(i int) string { return fmt.Sprintf("repository:bench/app%d:pull,push", i) }

func tokenURL(base string, scopes int) string {
	q := []string{"service=" + benchService}
	for i := 0; i < scopes; i++ {
		q = append(q, "scope="+benchScope(i))
	}
	return base + "/token?" + strings.Join(q, "&")
}

func newClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 10 * time.Second}
}

var auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(benchUser+":"+benchPassword))

// grant sends the i-th token request of a run and says how long the answer took.
type grant func(c *http.Client, i int) (time.Duration, error)

// basicGrant is GET /token with the password (docker without a stored identity token,
// and most other clients).
func basicGrant(base string, scopes int) grant {
	url := tokenURL(base, scopes)
	return func(c *http.Client, _ int) (time.Duration, error) { return one(c, url) }
}

func one(c *http.Client, url string) (time.Duration, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", auth)
	return timed(c, req, nil)
}

// timed sends req and returns how long the whole answer took; a 200 body must hold want
// when it is given.
func timed(c *http.Client, req *http.Request, want []byte) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	var body []byte
	if want != nil {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if want != nil && !bytes.Contains(body, want) {
		return 0, fmt.Errorf("answer without %s", want)
	}
	return d, nil
}

// closedLoop: conc clients, each sending its next request when the previous one returns.
// Client k sends requests k, k+conc, k+2·conc…, so a grant that cycles through several
// credentials spreads every client over all of them.
func closedLoop(send grant, conc int, dur time.Duration) (result, error) {
	c := newClient(conc)
	if _, err := send(c, 0); err != nil { // warm the cache and the connection
		return result{}, err
	}
	var mu sync.Mutex
	var res result
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < conc; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for i := k; !stop.Load(); i += conc {
				d, err := send(c, i)
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			mu.Unlock()
		}()
	}
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	return res, nil
}

// fixedRate: an open-loop load at rate requests/s, so latency is measured without the
// coordinated omission of a closed loop.
func fixedRate(send grant, rate int, dur time.Duration) (result, error) {
	c := newClient(256)
	if _, err := send(c, 0); err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; ; i++ {
		next := start.Add(time.Duration(i) * interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, sched time.Time) {
			defer wg.Done()
			late := time.Since(sched) > lateBy
			_, err := send(c, i)
			d := time.Since(sched) // from when it should have been sent
			mu.Lock()
			if late {
				res.late++
			}
			if err != nil {
				res.errs++
			} else {
				res.lat = append(res.lat, d)
			}
			mu.Unlock()
		}(i, next)
	}
	wg.Wait()
	res.elapsed = dur
	res.n = len(res.lat)
	return res, nil
}
