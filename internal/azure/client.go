package azure

import (
	"cmp"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Retry settings: azcore retries 429/5xx honouring Retry-After, but never sleeps longer
// than maxRetryDelay; a longer Retry-After surfaces as KindThrottled so the operator can
// requeue with RequeueAfter instead of blocking a worker.
const (
	defaultMaxRetries    = 3
	defaultRetryDelay    = time.Second
	defaultMaxRetryDelay = 10 * time.Second
)

// NICClient is the operator's door to ARM: NIC read-modify-write, subnet and VNet reads.
// It is safe for concurrent use.
type NICClient struct {
	cfg     Config
	cred    azcore.TokenCredential
	options *arm.ClientOptions
	limiter *limiterPolicy

	mu   sync.Mutex
	subs map[string]*armnetwork.ClientFactory // by lower-case subscription ID

	pending pendingOps
	index   nicIndex
	// subnetReads and vnetReads keep recent reads of the shared subnet and VNet.
	subnetReads readCache[armnetwork.Subnet]
	vnetReads   readCache[armnetwork.VirtualNetwork]
}

// NewNICClient validates cfg and builds the client; no ARM call is made.
func NewNICClient(cfg Config) (*NICClient, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate azure config: %w", err)
	}
	cfg = cfg.withDefaults()
	conf, err := cloudConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build cloud configuration: %w", err)
	}
	var opts arm.ClientOptions
	if cfg.ClientOptions != nil {
		opts = *cfg.ClientOptions.Clone()
	}
	opts.Cloud = conf
	if opts.Transport == nil || cfg.CACertFile != "" {
		hc, err := newHTTPClient(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("build http client: %w", err)
		}
		opts.Transport = hc
	}
	setRetryDefaults(&opts.Retry)
	// The operator never creates resources in unregistered providers; auto-registration would
	// only add calls (and minutes of polling) on a misconfigured subscription.
	opts.DisableRPRegistration = true
	lim := newLimiterPolicy(cfg)
	opts.PerRetryPolicies = append(opts.PerRetryPolicies, lim)
	if cfg.Observer != nil {
		opts.PerRetryPolicies = append(opts.PerRetryPolicies, &observerPolicy{observe: cfg.Observer})
	}
	cred, err := newCredential(cfg, conf, opts.Transport)
	if err != nil {
		return nil, err
	}
	return &NICClient{
		cfg: cfg, cred: cred, options: &opts, limiter: lim,
		subs: map[string]*armnetwork.ClientFactory{},
	}, nil
}

func setRetryDefaults(r *policy.RetryOptions) {
	r.MaxRetries = cmp.Or(r.MaxRetries, defaultMaxRetries)
	r.RetryDelay = cmp.Or(r.RetryDelay, defaultRetryDelay)
	r.MaxRetryDelay = cmp.Or(r.MaxRetryDelay, defaultMaxRetryDelay)
}

// factory returns the cached armnetwork client factory for a subscription.
func (c *NICClient) factory(subscriptionID string) (*armnetwork.ClientFactory, error) {
	key := strings.ToLower(subscriptionID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.subs[key]; ok {
		return f, nil
	}
	f, err := armnetwork.NewClientFactory(subscriptionID, c.cred, c.options)
	if err != nil {
		return nil, fmt.Errorf("create network clients for subscription %s: %w", subscriptionID, err)
	}
	c.subs[key] = f
	return f, nil
}

func (c *NICClient) interfaces(sub string) (*armnetwork.InterfacesClient, error) {
	f, err := c.factory(sub)
	if err != nil {
		return nil, err
	}
	return f.NewInterfacesClient(), nil
}
