package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// Main runs `nicpoolctl attach|detach [flags] <netns-path|pid>` with args
// starting at the subcommand, and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "attach" && args[0] != "detach") {
		fmt.Fprintln(stderr, "usage: nicpoolctl attach|detach [flags] <netns-path|pid>")
		return 2
	}
	cmd := args[0]
	var o Options
	timeout := 2 * time.Minute
	fs := pflag.NewFlagSet("nicpoolctl "+cmd, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.ID, "id", "", "attachment ID, e.g. the Docker container's ID; derived from the network namespace when empty (detach of a container whose namespace is gone needs it)")
	fs.StringVar(&o.IfName, "ifname", DefaultIfName, "interface name inside the container")
	fs.StringVar(&o.Network, "network", DefaultNetwork, "CNI network name")
	fs.StringVar(&o.ConfDir, "cni-conf-dir", DefaultConfDir, "CNI configuration directory")
	fs.StringSliceVar(&o.BinDirs, "cni-bin-dir", []string{DefaultBinDir}, "CNI plugin directories")
	fs.StringVar(&o.CacheDir, "cni-cache-dir", DefaultCacheDir, "libcni's result cache")
	fs.DurationVar(&timeout, "timeout", timeout, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: nicpoolctl %s [flags] <netns-path|pid>\n", cmd)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch fs.NArg() {
	case 0:
	case 1:
		o.Target = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if cmd == "attach" {
		res, id, err := Attach(ctx, o)
		if err != nil {
			fmt.Fprintln(stderr, "nicpoolctl attach:", err)
			return 1
		}
		fmt.Fprintln(stdout, Summary(id, res))
		return 0
	}
	id, err := Detach(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "nicpoolctl detach:", err)
		return 1
	}
	fmt.Fprintln(stdout, "detached", id)
	return 0
}
