// Command nicpool-armsim runs the simulated Azure VNet (an ARM REST emulator) standalone.
package main

import (
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

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nicpool-armsim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := pflag.NewFlagSet("nicpool-armsim", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "HTTPS listen address")
	topoPath := fs.String("topology", "", "topology YAML file (required)")
	caOut := fs.String("ca-out", "", "write the CA certificate (PEM) to this file")
	putLatency := fs.Duration("put-latency", 0, "how long a NIC PUT stays Updating before Succeeded")
	maxConfigs := fs.Int("max-ip-configs", armsim.DefaultMaxIPConfigsPerNIC, "maximum IP configurations per NIC")
	noThrottle := fs.Bool("no-throttle", false, "disable ARM's per-subscription request throttling")
	writeBucket := fs.Int("write-bucket", armsim.DefaultWriteBucket, "write token bucket size")
	writeRefill := fs.Float64("write-refill", armsim.DefaultWriteRefillPerSec, "write tokens refilled per second")
	readBucket := fs.Int("read-bucket", armsim.DefaultReadBucket, "read token bucket size")
	readRefill := fs.Float64("read-refill", armsim.DefaultReadRefillPerSec, "read tokens refilled per second")
	verbose := fs.BoolP("verbose", "v", false, "log every request")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println("nicpool-armsim", version)
		return nil
	}
	if *topoPath == "" {
		return fmt.Errorf("--topology is required")
	}
	topo, err := armsim.LoadTopology(*topoPath)
	if err != nil {
		return err
	}
	opts := armsim.Options{
		Topology:           topo,
		PutLatency:         *putLatency,
		MaxIPConfigsPerNIC: *maxConfigs,
		Throttle: armsim.ThrottleOptions{
			Disabled: *noThrottle, WriteBucket: *writeBucket, WriteRefillPerSec: *writeRefill,
			ReadBucket: *readBucket, ReadRefillPerSec: *readRefill,
		},
	}
	if *verbose {
		opts.Logf = log.Printf
	}
	srv, err := armsim.New(opts)
	if err != nil {
		return err
	}
	if err := srv.Start(*listen); err != nil {
		return err
	}
	defer srv.Close()
	if *caOut != "" {
		if err := os.WriteFile(*caOut, srv.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("write ca certificate %s: %w", *caOut, err)
		}
	}
	fmt.Printf("nicpool-armsim %s serving subscription %s at %s\n", version, srv.SubscriptionID(), srv.URL())
	if *caOut != "" {
		fmt.Printf("CA certificate: %s\n", *caOut)
		fmt.Printf("try: curl --cacert %s -H 'Authorization: Bearer x' '%s/subscriptions/%s/providers/Microsoft.Network/networkInterfaces?api-version=2025-05-01'\n",
			*caOut, srv.URL(), srv.SubscriptionID())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}
