package azure

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

// AuthMode selects how the client obtains ARM tokens.
type AuthMode string

const (
	// AuthDefault uses azidentity.DefaultAzureCredential (environment, workload identity,
	// managed identity, Azure CLI...).
	AuthDefault AuthMode = "default"
	// AuthWorkloadIdentity uses a federated Kubernetes service account token.
	AuthWorkloadIdentity AuthMode = "workload-identity"
	// AuthManagedIdentity uses the VM's (optionally user-assigned) managed identity.
	AuthManagedIdentity AuthMode = "managed-identity"
	// AuthNone sends a static dummy token; only allowed for a loopback ARM endpoint (armsim).
	AuthNone AuthMode = "none"
)

// Cloud names accepted by Config.Cloud.
const (
	CloudPublic       = "AzurePublic"
	CloudChina        = "AzureChina"
	CloudUSGovernment = "AzureUSGovernment"
)

// Defaults stay below ARM's per-subscription buckets (reads 250 refilling 25/s,
// writes 200 refilling 10/s) so that a large cluster does not bounce off them.
const (
	DefaultReadQPS         = 20
	DefaultReadBurst       = 200
	DefaultWriteQPS        = 8
	DefaultWriteBurst      = 150
	DefaultLROTimeout      = 2 * time.Minute
	DefaultLROPollInterval = time.Second
	// minPollInterval keeps the poll backoff's cap at or above its first step.
	minPollInterval = firstPollDelay
)

// Config configures the ARM client.
type Config struct {
	// Cloud is "AzurePublic" (default), "AzureChina" or "AzureUSGovernment".
	Cloud string
	// ARMEndpoint overrides the cloud's ARM endpoint (e.g. armsim's URL); https only.
	ARMEndpoint string
	// TokenAudience overrides the cloud's ARM token audience.
	TokenAudience string
	// CACertFile is an extra PEM CA bundle to trust in addition to the system pool (armsim).
	CACertFile string
	// Auth selects the credential; empty means AuthDefault.
	Auth AuthMode
	// ClientID is the user-assigned managed identity / workload identity client ID. With
	// AuthDefault the credential reads AZURE_CLIENT_ID from the environment instead.
	ClientID string
	// TenantID is the Entra tenant for workload identity and the default credential.
	TenantID string
	// ReadQPS is the client-side refill rate for GET requests.
	ReadQPS float64
	// ReadBurst is the client-side bucket size for GET requests.
	ReadBurst int
	// WriteQPS is the client-side refill rate for PUT/PATCH/POST/DELETE requests.
	WriteQPS float64
	// WriteBurst is the client-side bucket size for write requests.
	WriteBurst int
	// LROTimeout bounds the wait for a NIC PUT to finish (default 2m).
	LROTimeout time.Duration
	// LROPollInterval caps the gap between polls of a running PUT when ARM sends no
	// Retry-After (default 1s, minimum 50ms); the gaps start at 50ms and double.
	LROPollInterval time.Duration
	// Observer, if set, is called once per ARM HTTP attempt (retries and LRO polls included;
	// calls refused by the client-side limiter are not sent and not observed) with op one of
	// GetNIC, PutNIC, ListNICs, GetSubnet, GetVNet, PollOperation (else "Other"+method), the
	// HTTP status (0 on transport error) and the duration. It must be safe for concurrent use.
	Observer func(op string, statusCode int, d time.Duration)
	// ClientOptions, if set, is the base for the pipeline options (tests: transport, cloud).
	ClientOptions *arm.ClientOptions
	// Credential, if set, overrides Auth (tests).
	Credential azcore.TokenCredential
}

// withDefaults returns c with zero fields filled in.
func (c Config) withDefaults() Config {
	c.Cloud = cmp.Or(c.Cloud, CloudPublic)
	c.Auth = cmp.Or(c.Auth, AuthDefault)
	c.ReadQPS = cmp.Or(c.ReadQPS, DefaultReadQPS)
	c.ReadBurst = cmp.Or(c.ReadBurst, DefaultReadBurst)
	c.WriteQPS = cmp.Or(c.WriteQPS, DefaultWriteQPS)
	c.WriteBurst = cmp.Or(c.WriteBurst, DefaultWriteBurst)
	c.LROTimeout = cmp.Or(c.LROTimeout, DefaultLROTimeout)
	c.LROPollInterval = cmp.Or(c.LROPollInterval, DefaultLROPollInterval)
	return c
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	if _, err := baseCloud(d.Cloud); err != nil {
		errs = append(errs, err)
	}
	switch d.Auth {
	case AuthDefault, AuthWorkloadIdentity, AuthManagedIdentity, AuthNone:
	default:
		errs = append(errs, fmt.Errorf("auth mode %q is not one of default, workload-identity, managed-identity, none", c.Auth))
	}
	if c.ARMEndpoint != "" {
		if _, err := parseEndpoint(c.ARMEndpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if d.Auth == AuthNone && c.Credential == nil {
		if err := checkLoopback(c.effectiveEndpoint()); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ReadQPS < 0 || c.WriteQPS < 0 || c.ReadBurst < 0 || c.WriteBurst < 0 {
		errs = append(errs, errors.New("rate limits must not be negative"))
	}
	if c.LROTimeout < 0 {
		errs = append(errs, fmt.Errorf("lro timeout %s must not be negative", c.LROTimeout))
	}
	if c.LROPollInterval != 0 && c.LROPollInterval < minPollInterval {
		errs = append(errs, fmt.Errorf("lro poll interval %s is below the minimum of %s", c.LROPollInterval, minPollInterval))
	}
	return errors.Join(errs...)
}

// effectiveEndpoint is the ARM endpoint requests will go to.
func (c Config) effectiveEndpoint() string {
	if c.ARMEndpoint != "" {
		return c.ARMEndpoint
	}
	if c.ClientOptions != nil {
		if s, ok := c.ClientOptions.Cloud.Services[cloud.ResourceManager]; ok && s.Endpoint != "" {
			return s.Endpoint
		}
	}
	base, err := baseCloud(c.withDefaults().Cloud)
	if err != nil {
		return ""
	}
	return base.Services[cloud.ResourceManager].Endpoint
}

func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse arm endpoint %q: %w", raw, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("arm endpoint %q must be an absolute https:// URL", raw)
	}
	return u, nil
}

// checkLoopback refuses AuthNone for anything but a loopback endpoint, so a dummy token
// can never be sent to real Azure.
func checkLoopback(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("auth mode none needs a loopback arm endpoint (armsim), got %q", endpoint)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("auth mode none is only allowed for a loopback arm endpoint (armsim), not %q", endpoint)
}
