package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func numCPU() int { return runtime.NumCPU() }

// vmRSS is a process's resident set in bytes (0 when /proc cannot tell).
func vmRSS(pid int) int64 { return procStatusKB(pid, "VmRSS") }

// vmHWM is a process's peak resident set since it started, in bytes (0 when /proc cannot
// tell).
func vmHWM(pid int) int64 { return procStatusKB(pid, "VmHWM") }

// procStatusKB is field (a size in kB) of /proc/<pid>/status in bytes, or 0 when /proc cannot
// tell.
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	n, _ := statusKB(string(b), field)
	return n
}

// statusKB reads field, a size the kernel gives in kB (KiB: "VmRSS:\t  53412 kB"), from a
// /proc/<pid>/status text, in bytes.
func statusKB(status, field string) (int64, bool) {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux port Go
// supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the user+system CPU time the processes have used so far, or 0 when /proc
// cannot tell (not Linux).
func cpuTime(procs []*exec.Cmd) time.Duration {
	var total time.Duration
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
		if err != nil {
			return 0
		}
		t, ok := statCPU(string(b))
		if !ok {
			return 0
		}
		total += t
	}
	return total
}

// cpuTimes is each process's user+system CPU time so far (0 for one /proc cannot tell of).
func cpuTimes(procs []*exec.Cmd) []time.Duration {
	out := make([]time.Duration, len(procs))
	for i, p := range procs {
		out[i] = procCPU(p.Process.Pid)
	}
	return out
}

// statFields splits a /proc/<pid>/stat line into its fields from field 3 (state) on.
func statFields(stat string) ([]string, bool) {
	// The command name (field 2) may hold spaces and parentheses; the fields after its
	// closing parenthesis are numbers, starting with field 3.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return nil, false
	}
	return f, true
}

// statCPU reads utime+stime (fields 14 and 15) from a /proc/<pid>/stat line.
func statCPU(stat string) (time.Duration, bool) {
	f, ok := statFields(stat)
	if !ok {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * clockTick, true
}

// statPPid reads the parent's process id (field 4) from a /proc/<pid>/stat line.
func statPPid(stat string) (int, bool) {
	f, ok := statFields(stat)
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(f[4-3])
	return p, err == nil
}

// serverCPU is the CPU time a PostgreSQL server has used so far: its postmaster and live
// children, among them the backends serving the session store's pool. (Backends call setsid,
// so the postmaster's process group does not hold them.)
func serverCPU(postmaster int) time.Duration {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var total time.Duration
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited since the glob
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if ppid, ok := statPPid(string(b)); pid != postmaster && (!ok || ppid != postmaster) {
			continue
		}
		if t, ok := statCPU(string(b)); ok {
			total += t
		}
	}
	return total
}

// childProcess finds the child of parent whose command name is name, from /proc; found is
// false when there is not exactly one.
func childProcess(parent int, name string) (pid int, found bool) {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited since the glob
		}
		stat := string(b)
		ppid, ok := statPPid(stat)
		if !ok || ppid != parent || statComm(stat) != name {
			continue
		}
		pid, _ = strconv.Atoi(filepath.Base(filepath.Dir(p)))
		n++
	}
	return pid, n == 1
}

// statComm reads the command name (field 2, in parentheses) from a /proc/<pid>/stat line.
func statComm(stat string) string {
	i, j := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if i < 0 || j < i {
		return ""
	}
	return stat[i+1 : j]
}

// procCPU is the CPU time process pid (all its threads) has used so far, or 0 when /proc
// cannot tell.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	t, _ := statCPU(string(b))
	return t
}
