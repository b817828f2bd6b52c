package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// server is a running Portcullis: its gateway URL, where the signer's metrics are, and the CPU
// time its processes have used so far.
type server struct {
	url, signerMetrics string
	adminAddr          string // admin.listen, when the scenario has one
	authzAddr          string // the authz service's gRPC address (split)
	cpu                func() time.Duration
	// cpuEach is each process's CPU time so far, in the order of names.
	cpuEach func() []time.Duration
	// allocs reads the allocation counters of the one Portcullis process; nil in the split
	// deployment, where the gateway's metrics are only one process's of four.
	allocs func() (allocCounters, error)
	// rss is each process's resident set (VmRSS), by process name (target-index).
	rss func() map[string]int64
	// hwm is each process's peak resident set since it started (VmHWM), by process name.
	hwm func() map[string]int64
	// restart stops the i-th process (SIGTERM, so it drains) and starts it again.
	restart func(i int) error
	names   []string
}

// measure runs load and sets the result's CPU time to what the server used meanwhile, each
// process's share, and (all-in-one) the heap allocations the server made meanwhile.
func (s server) measure(load func() (result, error)) (result, error) {
	// Two scrapes before the run: the allocations between them are one scrape's own (the
	// counters are read part-way through a scrape), which the scrape after the run adds too.
	var a0, a1 allocCounters
	var aerr error
	if s.allocs != nil {
		if a0, aerr = s.allocs(); aerr == nil {
			a1, aerr = s.allocs()
		}
	}
	cpu0, each0 := s.cpu(), s.cpuEach()
	res, err := load()
	res.cpu = s.cpu() - cpu0
	for i, c := range s.cpuEach() {
		if i < len(each0) && i < len(s.names) {
			res.parts = append(res.parts, procCPUShare{s.names[i], c - each0[i]})
		}
	}
	if s.allocs != nil && aerr == nil {
		if a2, err := s.allocs(); err == nil {
			d := a2.sub(a1).sub(a1.sub(a0))
			res.allocs = &allocCounters{max(d.mallocs, 0), max(d.bytes, 0)}
		}
	}
	return res, err
}

// withServer starts Portcullis for scenario sc (with a CPU profile into cpuprofile, unless
// empty), runs f on its gateway URL, counts the server's CPU time during f, and stops it.
func withServer(bin, dir string, sc scenario, cpuprofile string, f func(url string) (result, error)) (result, error) {
	return withServerAt(bin, dir, sc, cpuprofile, func(s server) (result, error) {
		return s.measure(func() (result, error) { return f(s.url) })
	})
}

// withServerAt starts Portcullis for scenario sc (all-in-one, or split into a process per
// target and signer replica) from a config file it writes into dir, waits until the gateway is
// ready, hands f the running server and stops every process (SIGINT, so it drains) afterwards.
// f measures what it wants with server.measure.
func withServerAt(bin, dir string, sc scenario, cpuprofile string, f func(s server) (result, error)) (result, error) {
	ports := make([]string, numPorts)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return result{}, err
		}
		ports[i] = p
	}
	if sc.pgDSN == "" { // every server starts with no sessions
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(sessionsDB(dir) + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return result{}, err
			}
		}
	}
	type proc struct{ target, config string }
	var extra []proc
	for i := 1; i < sc.signers; i++ {
		// Each further replica has a config of its own: another signer listen and metrics address.
		addr, err := freePort()
		if err != nil {
			return result{}, err
		}
		metrics, err := freePort()
		if err != nil {
			return result{}, err
		}
		sc.extraSigners = append(sc.extraSigners, addr)
		own := slices.Clone(ports)
		own[portSigner], own[portSignerMetrics] = addr, metrics
		path := filepath.Join(dir, fmt.Sprintf("config-signer%d.yaml", i+1))
		extra = append(extra, proc{"signer", path})
		c, err := serverConfig(dir, sc, own)
		if err != nil {
			return result{}, err
		}
		if err := writeConfig(path, c); err != nil {
			return result{}, err
		}
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	c, err := serverConfig(dir, sc, ports)
	if err != nil {
		return result{}, err
	}
	if err := writeConfig(cfgPath, c); err != nil {
		return result{}, err
	}
	targets := []proc{{"all", cfgPath}}
	if sc.split {
		targets = append([]proc{{"authn", cfgPath}, {"authz", cfgPath}, {"signer", cfgPath}}, extra...)
		targets = append(targets, proc{"gateway", cfgPath})
	}
	var procs []*exec.Cmd
	var exited []chan struct{} // closed when procs[i] has exited
	defer func() {
		for i, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
			<-exited[i]
		}
	}()
	startProc := func(i int, t proc) (*exec.Cmd, chan struct{}, error) {
		args := []string{"-target=" + t.target, "-config=" + t.config}
		if cpuprofile != "" {
			args = append(args, "-cpuprofile="+cpuprofile)
		}
		cmd := exec.Command(bin, args...)
		logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", t.target, i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, err
		}
		cmd.Stdout, cmd.Stderr = io.Discard, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, nil, err
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
		return cmd, done, nil
	}
	var names []string
	for i, t := range targets {
		cmd, done, err := startProc(i, t)
		if err != nil {
			return result{}, err
		}
		procs = append(procs, cmd)
		exited = append(exited, done)
		names = append(names, fmt.Sprintf("%s-%d", t.target, i))
	}
	url := "http://" + ports[portGateway]
	if err := waitReady(url, 15*time.Second); err != nil {
		last := len(targets) - 1
		log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", targets[last].target, last)))
		return result{}, fmt.Errorf("%w\n%s", err, log)
	}
	metrics := "http://" + ports[portGatewayMetrics] + "/metrics"
	if sc.split {
		metrics = "http://" + ports[portSignerMetrics] + "/metrics"
	}
	restart := func(i int) error {
		_ = procs[i].Process.Signal(os.Interrupt)
		<-exited[i]
		cmd, done, err := startProc(i, targets[i])
		if err != nil {
			return err
		}
		procs[i], exited[i] = cmd, done
		return nil
	}
	// byProc reads a figure of each running process; a restarted one's is the new process's.
	byProc := func(read func(pid int) int64) func() map[string]int64 {
		return func() map[string]int64 {
			out := map[string]int64{}
			for i, p := range procs {
				out[names[i]] = read(p.Process.Pid)
			}
			return out
		}
	}
	var allocs func() (allocCounters, error)
	if !sc.split { // gateway.metrics_listen serves every service's metrics: they share the process
		aioMetrics := "http://" + ports[portGatewayMetrics] + "/metrics"
		allocs = func() (allocCounters, error) { return readAllocCounters(aioMetrics) }
	}
	return f(server{url: url, signerMetrics: metrics, adminAddr: ports[portAdmin], authzAddr: ports[portAuthz],
		cpu: func() time.Duration { return cpuTime(procs) }, cpuEach: func() []time.Duration { return cpuTimes(procs) },
		allocs: allocs, rss: byProc(vmRSS), hwm: byProc(vmHWM), restart: restart, names: names})
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("server not ready")
}
