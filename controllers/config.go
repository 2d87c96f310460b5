package controllers

import (
	"errors"
	"flag"
	"fmt"
	"time"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
)

// Options configures the operator; flags fill it in.
type Options struct {
	// PerVMLimit caps the nicpool IPs on one VM's NIC (at most 250).
	PerVMLimit int
	// PerVNetLimit caps the nicpool IPs across one VNet (at most 16,000).
	PerVNetLimit int
	// Workers is the number of pools reconciled at once.
	Workers int
	// LeaderElect enables leader election.
	LeaderElect bool
	// LeaderElectionNamespace holds the leader election Lease.
	LeaderElectionNamespace string
	// MetricsAddr is where Prometheus metrics are served ("0" disables).
	MetricsAddr string
	// ProbeAddr is where the health and readiness probes are served.
	ProbeAddr string
	// ShowVersion prints the build information and exits.
	ShowVersion bool
	// LimitRetry is how often a pool held back by a limit tries again.
	LimitRetry time.Duration
	// PendingRetry is how often a NIC with a write still running is polled.
	PendingRetry time.Duration
	// ThrottleRetry is the wait after a 429 without Retry-After.
	ThrottleRetry time.Duration
	// Scope limits the NICs the operator writes to.
	Scope Scope
	// Azure configures the ARM client.
	Azure azure.Config
	// ServiceLB configures Services of type LoadBalancer (opt-in).
	ServiceLB ServiceLBOptions

	authMode string
}

// ServiceLBOptions configures the Service controller: Services of type
// LoadBalancer with nicpool's loadBalancerClass, served by Azure load
// balancers whose backend pools hold the pods' IP configurations.
type ServiceLBOptions struct {
	// Enabled turns the Service controller on.
	Enabled bool
	// SubnetID is the subnet internal frontends take their address from
	// (unless a Service names another of its VNet); its VNet is the one
	// the load balancers serve.
	SubnetID string
	// ResourceGroup holds the load balancers and the public IPs created for
	// Services (default: the subnet's).
	ResourceGroup string
	// Name is the public load balancer's name; the internal one is Name
	// with "-internal" appended.
	Name string
	// Location is the load balancers' region (default: the VNet's).
	Location string
}

// DefaultOptions returns the defaults the flags start from.
func DefaultOptions() Options {
	return Options{
		PerVMLimit: nicpoolv1.MaxIPsPerNode, PerVNetLimit: nicpoolv1.MaxIPsPerVNet, Workers: 10,
		MetricsAddr: ":8080", ProbeAddr: ":8081", LeaderElectionNamespace: "",
		LimitRetry: 30 * time.Second, PendingRetry: 2 * time.Second, ThrottleRetry: 10 * time.Second,
		ServiceLB: ServiceLBOptions{Name: "nicpool"},
		Azure: azure.Config{
			Auth: azure.AuthDefault, LROTimeout: time.Second,
			ReadQPS: azure.DefaultReadQPS, ReadBurst: azure.DefaultReadBurst,
			WriteQPS: azure.DefaultWriteQPS, WriteBurst: azure.DefaultWriteBurst,
		},
	}
}

// BindFlags registers the operator's flags on fs, defaulting to o's values.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.PerVMLimit, "per-vm-limit", o.PerVMLimit, fmt.Sprintf("most secondary IPs nicpool places on one VM's NIC (at most %d)", nicpoolv1.MaxIPsPerNode))
	fs.IntVar(&o.PerVNetLimit, "per-vnet-limit", o.PerVNetLimit, fmt.Sprintf("most secondary IPs nicpool places across one VNet (at most %d)", nicpoolv1.MaxIPsPerVNet))
	fs.IntVar(&o.Workers, "workers", o.Workers, "pools reconciled in parallel")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "elect a leader among replicas (required with more than one)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "namespace of the leader election Lease (default: the pod's namespace)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, `address of the Prometheus metrics endpoint ("0" disables it)`)
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "address of the /healthz and /readyz endpoints")
	fs.BoolVar(&o.ShowVersion, "version", false, "print build information and exit")
	fs.DurationVar(&o.LimitRetry, "limit-retry-interval", o.LimitRetry, "how often a pool held back by the VNet quota or a full subnet tries again")
	fs.DurationVar(&o.Azure.LROTimeout, "lro-wait", o.Azure.LROTimeout, "how long a worker waits for a NIC write to finish before it moves on and polls it later (a worker is not held for the whole write)")
	fs.DurationVar(&o.PendingRetry, "pending-poll-interval", o.PendingRetry, "how often a NIC write still running is polled")
	fs.StringVar(&o.Scope.SubscriptionID, "subscription-id", o.Scope.SubscriptionID, "when set, manage only NICs in this subscription (pools whose NIC lies elsewhere get Ready=False, OutOfScope)")
	fs.StringVar(&o.Scope.ResourceGroup, "resource-group", o.Scope.ResourceGroup, "when set, manage only NICs in this resource group")
	fs.StringVar(&o.Azure.Cloud, "cloud", o.Azure.Cloud, "Azure cloud: AzurePublic, AzureChina or AzureUSGovernment")
	fs.StringVar(&o.Azure.ARMEndpoint, "arm-endpoint", o.Azure.ARMEndpoint, "ARM endpoint override (https), e.g. the simulated VNet's")
	fs.StringVar(&o.Azure.CACertFile, "arm-ca-file", o.Azure.CACertFile, "extra PEM CA bundle to trust for the ARM endpoint")
	o.authMode = string(o.Azure.Auth)
	fs.StringVar(&o.authMode, "auth-mode", o.authMode, "ARM credential: default, workload-identity, managed-identity or none (loopback endpoints only)")
	fs.StringVar(&o.Azure.ClientID, "client-id", o.Azure.ClientID, "client ID of the managed or workload identity")
	fs.StringVar(&o.Azure.TenantID, "tenant-id", o.Azure.TenantID, "Entra tenant ID")
	fs.BoolVar(&o.ServiceLB.Enabled, "service-load-balancers", o.ServiceLB.Enabled,
		"serve Services of type LoadBalancer with loadBalancerClass "+LoadBalancerClass+" through Azure load balancers whose backend pools hold the pods' IPs")
	fs.StringVar(&o.ServiceLB.SubnetID, "service-lb-subnet", o.ServiceLB.SubnetID, "ID of the subnet internal Service frontends take their address from (required with --service-load-balancers)")
	fs.StringVar(&o.ServiceLB.ResourceGroup, "service-lb-resource-group", o.ServiceLB.ResourceGroup, "resource group of the Services' load balancers and public IPs (default: the subnet's)")
	fs.StringVar(&o.ServiceLB.Name, "service-lb-name", o.ServiceLB.Name, `name of the public load balancer; the internal one is this name with "-internal" appended`)
	fs.StringVar(&o.ServiceLB.Location, "service-lb-location", o.ServiceLB.Location, "region of the Services' load balancers (default: the subnet's VNet's)")
	fs.Float64Var(&o.Azure.ReadQPS, "read-qps", o.Azure.ReadQPS, "client-side ARM read rate (per second)")
	fs.IntVar(&o.Azure.ReadBurst, "read-burst", o.Azure.ReadBurst, "client-side ARM read burst")
	fs.Float64Var(&o.Azure.WriteQPS, "write-qps", o.Azure.WriteQPS, "client-side ARM write rate (per second)")
	fs.IntVar(&o.Azure.WriteBurst, "write-burst", o.Azure.WriteBurst, "client-side ARM write burst")
}

// Validate checks the options after flag parsing, reporting every problem;
// limits above Azure's maxima are refused.
func (o *Options) Validate() error {
	if o.authMode != "" {
		o.Azure.Auth = azure.AuthMode(o.authMode)
	}
	var errs []error
	if o.PerVMLimit < 1 || o.PerVMLimit > nicpoolv1.MaxIPsPerNode {
		errs = append(errs, fmt.Errorf("--per-vm-limit=%d: must be between 1 and %d (Azure allows 256 IP configurations per NIC, one is the primary and the rest is headroom)", o.PerVMLimit, nicpoolv1.MaxIPsPerNode))
	}
	if o.PerVNetLimit < 1 || o.PerVNetLimit > nicpoolv1.MaxIPsPerVNet {
		errs = append(errs, fmt.Errorf("--per-vnet-limit=%d: must be between 1 and %d (Azure's limit of private IPs per VNet is 65,536; nicpool supports %d)", o.PerVNetLimit, nicpoolv1.MaxIPsPerVNet, nicpoolv1.MaxIPsPerVNet))
	}
	if o.Workers < 1 {
		errs = append(errs, fmt.Errorf("--workers=%d: must be at least 1", o.Workers))
	}
	if o.LimitRetry <= 0 || o.PendingRetry <= 0 || o.ThrottleRetry <= 0 {
		errs = append(errs, errors.New("--limit-retry-interval and --pending-poll-interval must be positive"))
	}
	if o.ServiceLB.Enabled {
		if _, err := newServiceLBs(o.ServiceLB); err != nil {
			errs = append(errs, err)
		}
		if o.ServiceLB.Name == "" {
			errs = append(errs, errors.New("--service-lb-name must not be empty"))
		}
	}
	if err := o.Scope.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.Azure.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("azure: %w", err))
	}
	return errors.Join(errs...)
}
