// Command nicpool-agent is nicpool's node agent: it serves VNet IPs to the
// nicpool CNI plugin, from its node's NodeIPPool (the DaemonSet) or, on a VM
// without Kubernetes, from the VM's NIC (--pool-source=arm or imds; run by
// systemd, see deploy/systemd).
package main

import (
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/textlogger"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/nodeagent"
	"github.com/nicpool/nicpool/nodeagent/install"
	"github.com/nicpool/nicpool/nodeagent/poolsync"
	"github.com/nicpool/nicpool/nodeagent/snat"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nicpool-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	o := nodeagent.DefaultOptions()
	fs := pflag.NewFlagSet("nicpool-agent", pflag.ContinueOnError)
	o.BindFlags(fs)
	logCfg := textlogger.NewConfig()
	logCfg.AddFlags(goflag.CommandLine)
	fs.AddGoFlagSet(goflag.CommandLine)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("parse flags: %w", err)
	}
	if o.ShowVersion {
		fmt.Println("nicpool-agent", version)
		return nil
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("invalid options:\n%w", err)
	}
	log := textlogger.NewLogger(logCfg)
	ctrllog.SetLogger(log)

	icfg := install.Config{
		BinarySource: o.CNIBinary,
		BinDir:       o.CNIBinDir,
		ConfDir:      o.CNIConfDir,
		ConfFileName: o.CNIConfFileName,
		AgentSocket:  o.SocketPath,
		MTU:          o.MTU,
		CNIVersion:   o.CNIVersion,
		Log:          log.WithName("install"),
	}
	newSNAT := func(primaryIP string, nonMasq, ownPublicIP []string) (nodeagent.SNAT, error) {
		return snat.New(snat.Config{ChainName: snat.DefaultChainName, PrimaryIP: primaryIP, NonMasqueradeCIDRs: nonMasq, IPForwardPath: o.IPForwardSysctl, NoSNATSources: ownPublicIP})
	}
	if o.Uninstall {
		inst, err := install.New(icfg)
		if err != nil {
			return fmt.Errorf("configure the cni installer: %w", err)
		}
		return uninstall(inst)
	}

	deps := nodeagent.Deps{NewSNAT: newSNAT, Log: log}
	switch o.PoolSource {
	case nodeagent.PoolSourceNodeIPPool:
		restCfg, err := restConfig(o.Kubeconfig)
		if err != nil {
			return err
		}
		// Notice a dead API server connection within seconds, not client-go's 45 s.
		if restCfg, err = poolsync.HealthChecked(restCfg, poolsync.DefaultHealth); err != nil {
			return err
		}
		// --cni-version=auto reads the node's container runtime from its Node.
		nodes, err := client.New(restCfg, client.Options{})
		if err != nil {
			return fmt.Errorf("build the node client: %w", err)
		}
		icfg.RuntimeVersion = install.NodeRuntimeVersion(nodes, o.NodeName)
		deps.RestConfig = restCfg
	default:
		// No Kubernetes: the runtime is what --container-runtime says.
		runtime := o.Standalone.ContainerRuntime
		icfg.RuntimeVersion = func(context.Context) (string, error) { return runtime, nil }
		if o.PoolSource == nodeagent.PoolSourceARM {
			nics, err := azure.NewNICClient(o.Standalone.Azure)
			if err != nil {
				return fmt.Errorf("build the arm client: %w", err)
			}
			deps.NICs = nics
		}
	}
	inst, err := install.New(icfg)
	if err != nil {
		return fmt.Errorf("configure the cni installer: %w", err)
	}
	deps.Installer = inst
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	deps.Registry = reg
	return nodeagent.Run(ctx, o, deps)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := config.GetConfig()
		if err != nil {
			return nil, fmt.Errorf("load in-cluster config: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// uninstall withdraws the CNI configuration and removes the SNAT chain.
func uninstall(inst *install.Installer) error {
	var errs []error
	if err := inst.Withdraw(); err != nil {
		errs = append(errs, fmt.Errorf("withdraw cni configuration: %w", err))
	}
	// Cleanup needs no primary IP; a placeholder satisfies validation.
	if m, err := snat.New(snat.Config{ChainName: snat.DefaultChainName, PrimaryIP: "192.0.2.1", NonMasqueradeCIDRs: []string{"192.0.2.0/24"}}); err != nil {
		errs = append(errs, fmt.Errorf("prepare snat cleanup: %w", err))
	} else if err := m.Cleanup(); err != nil {
		errs = append(errs, fmt.Errorf("remove snat chain: %w", err))
	}
	return errors.Join(errs...)
}
