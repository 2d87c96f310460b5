// Command nicpool-operator reconciles NodeIPPools against the secondary IP
// configurations of the Azure VM NICs they stand for.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/nicpool/nicpool/controllers"
	"github.com/nicpool/nicpool/internal/azure"
)

func main() {
	opts := controllers.DefaultOptions()
	opts.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse() // --kubeconfig is registered by controller-runtime.
	if opts.ShowVersion {
		if info, ok := debug.ReadBuildInfo(); ok {
			fmt.Print(info.String())
		}
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "nicpool-operator:", err)
		os.Exit(1)
	}
}

func run(opts controllers.Options) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("invalid flags: %w", err)
	}
	opts.Azure.Observer = controllers.ObserveARMCall
	nics, err := azure.NewNICClient(opts.Azure)
	if err != nil {
		return fmt.Errorf("create arm client: %w", err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(opts, scheme))
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if _, err := controllers.Setup(mgr, opts, nics); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
