package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the pause binary when this variable is set.
const childEnv = "NICPOOL_PAUSE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		notified = func() { os.Stdout.WriteString("ready\n") }
		main()
		return
	}
	os.Exit(m.Run())
}

func TestExitsZeroOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Signals sent before signal.Notify ran would kill it instead:
			// wait for the child to say it is caught (a sleeping state is
			// no proof: the Go runtime sleeps during start-up too).
			if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("child did not report ready: %q, %v", line, err)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("pause after %v: %v, want exit status 0", sig, err)
			}
		})
	}
}

func TestReapCollectsExitedChildren(t *testing.T) {
	var pids []int
	for range 3 {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			t.Skipf("no /bin/true to start: %v", err)
		}
		pids = append(pids, p.Pid)
	}
	for _, pid := range pids {
		waitState(t, pid, "Z")
	}
	reap()
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("child %d still exists after reap (stat: %v)", pid, err)
		}
	}
}

// waitState polls until process pid is in state (a /proc/PID/stat letter).
func waitState(t *testing.T, pid int, state string) {
	t.Helper()
	for range 1000 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err == nil {
			if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == state {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never reached state %s", pid, state)
}
