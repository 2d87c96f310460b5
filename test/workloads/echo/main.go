// Command echo is the test clusters' workload: a server that tells each
// client the source address it saw, and the few client tools a test needs
// inside a pod whose image has no shell, curl or nslookup.
//
//	echo serve [--http :8080] [--tcp :9000] [--udp :9000]   (the default without arguments)
//	echo get [--timeout 5s] URL                   print the body; fail unless the status is 2xx
//	echo resolve [--server IP[:PORT]] [--timeout 5s] NAME   print the addresses, one a line
//	echo tcp [--timeout 5s] [--send TEXT] HOST:PORT         print everything the server sends
//	echo udp [--timeout 5s] [--send TEXT] HOST:PORT         print the server's reply
//	echo addrs                                    print "INTERFACE IP/PREFIX" for each non-loopback address
//
// The servers answer every request, connection or datagram with one JSON
// line, a Report: {"hostname":..., "source":"IP:PORT", "local":"IP:PORT",
// "proto":..., "path":..., "data":...}. Over TCP the line comes first and then
// whatever the client sends is echoed back. GET /healthz answers "ok".
// Exit status: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// run dispatches to a subcommand; serve runs until ctx ends.
func run(ctx context.Context, args []string, out io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch cmd {
	case "serve":
		var s servers
		fs.StringVar(&s.HTTP, "http", ":8080", "HTTP listen address; empty disables")
		fs.StringVar(&s.TCP, "tcp", ":9000", "TCP listen address; empty disables")
		fs.StringVar(&s.UDP, "udp", ":9000", "UDP listen address; empty disables")
		if err := parse(fs, args, 0); err != nil {
			return err
		}
		return s.serve(ctx)
	case "get", "resolve", "tcp", "udp":
		var c client
		fs.DurationVar(&c.Timeout, "timeout", defaultTimeout, "give up after this long")
		if cmd == "resolve" {
			fs.StringVar(&c.Server, "server", "", "DNS server IP[:PORT] to ask instead of /etc/resolv.conf's")
		}
		if cmd == "tcp" || cmd == "udp" {
			fs.StringVar(&c.Send, "send", "", "text to send")
		}
		if err := parse(fs, args, 1); err != nil {
			return err
		}
		return c.run(ctx, cmd, fs.Arg(0), out)
	case "addrs":
		if err := parse(fs, args, 0); err != nil {
			return err
		}
		return printAddrs(out)
	default:
		return fmt.Errorf("%w: unknown command %q (serve, get, resolve, tcp, udp, addrs)", errUsage, cmd)
	}
}

// parse parses fs and wants exactly n positional arguments.
func parse(fs *flag.FlagSet, args []string, n int) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %s: %w", errUsage, fs.Name(), err)
	}
	if fs.NArg() != n {
		return fmt.Errorf("%w: %s wants %d argument(s), got %q", errUsage, fs.Name(), n, fs.Args())
	}
	return nil
}
