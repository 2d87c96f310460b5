// Command pause is the pod sandbox's infrastructure container for the test
// clusters: it holds the pod's namespaces open and does nothing else, like
// registry.k8s.io/pause, built here because no registry is reachable. As the
// sandbox's PID 1 (with a shared PID namespace) it reaps orphaned children,
// and it exits 0 on SIGINT or SIGTERM so that a sandbox stops promptly.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// notified runs once the signals are caught; tests use it to know when a
// signal no longer kills the process.
var notified = func() {}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (nicpool test workloads)")
		return
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	notified()
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking; SIGCHLD signals merge,
// so one signal may stand for several children.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
