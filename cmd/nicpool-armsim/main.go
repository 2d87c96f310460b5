// Command nicpool-armsim runs the simulated Azure VNet (an ARM REST emulator) standalone.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/nicpool/nicpool/internal/armsim"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// config is the parsed command line.
type config struct {
	listen, topology, caOut string
	verbose, showVersion    bool
	opts                    armsim.Options
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nicpool-armsim:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	t := &c.opts.Throttle
	fs := pflag.NewFlagSet("nicpool-armsim", pflag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "HTTPS listen address")
	fs.StringVar(&c.topology, "topology", "", "topology YAML file (required)")
	fs.StringVar(&c.caOut, "ca-out", "", "write the CA certificate (PEM) to this file")
	fs.DurationVar(&c.opts.PutLatency, "put-latency", 0, "how long a NIC PUT stays Updating before Succeeded")
	fs.IntVar(&c.opts.MaxIPConfigsPerNIC, "max-ip-configs", armsim.DefaultMaxIPConfigsPerNIC, "maximum IP configurations per NIC")
	fs.BoolVar(&t.Disabled, "no-throttle", false, "disable ARM's per-subscription request throttling")
	fs.IntVar(&t.WriteBucket, "write-bucket", armsim.DefaultWriteBucket, "write token bucket size")
	fs.Float64Var(&t.WriteRefillPerSec, "write-refill", armsim.DefaultWriteRefillPerSec, "write tokens refilled per second")
	fs.IntVar(&t.ReadBucket, "read-bucket", armsim.DefaultReadBucket, "read token bucket size")
	fs.Float64Var(&t.ReadRefillPerSec, "read-refill", armsim.DefaultReadRefillPerSec, "read tokens refilled per second")
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "log every request")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	if c.topology == "" && !c.showVersion {
		return nil, errors.New("--topology is required")
	}
	return c, nil
}

func run(args []string) (err error) {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	if c.showVersion {
		fmt.Println("nicpool-armsim", version)
		return nil
	}
	if c.opts.Topology, err = armsim.LoadTopology(c.topology); err != nil {
		return err
	}
	if c.verbose {
		c.opts.Logf = log.Printf
	}
	srv, err := armsim.New(c.opts)
	if err != nil {
		return err
	}
	if err := srv.Start(context.Background(), c.listen); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Close()) }()
	fmt.Printf("nicpool-armsim %s serving subscription %s at %s\n", version, srv.SubscriptionID(), srv.URL())
	if c.caOut != "" {
		if err := os.WriteFile(c.caOut, srv.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("write ca certificate %s: %w", c.caOut, err)
		}
		fmt.Printf("CA certificate: %s\n", c.caOut)
		fmt.Printf("try: curl --cacert %s -H 'Authorization: Bearer x' '%s/subscriptions/%s/providers/Microsoft.Network/networkInterfaces?api-version=2025-05-01'\n",
			c.caOut, srv.URL(), srv.SubscriptionID())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}
