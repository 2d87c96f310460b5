package azure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	// Importing arm/runtime registers the clouds' ARM endpoints in cloud.Azure*.
	_ "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm/runtime"
)

// baseCloud returns a copy of the named cloud's configuration (never the shared global).
func baseCloud(name string) (cloud.Configuration, error) {
	var c cloud.Configuration
	switch name {
	case CloudPublic, "":
		c = cloud.AzurePublic
	case CloudChina:
		c = cloud.AzureChina
	case CloudUSGovernment:
		c = cloud.AzureGovernment
	default:
		return cloud.Configuration{}, fmt.Errorf("cloud %q is not one of %s, %s, %s",
			name, CloudPublic, CloudChina, CloudUSGovernment)
	}
	c.Services = maps.Clone(c.Services)
	return c, nil
}

// cloudConfig builds the cloud configuration: the base options' cloud if given, else the
// named cloud, with ARMEndpoint and TokenAudience applied on top.
func cloudConfig(c Config) (cloud.Configuration, error) {
	var conf cloud.Configuration
	if c.ClientOptions != nil && c.ClientOptions.Cloud.Services != nil {
		conf = c.ClientOptions.Cloud
		conf.Services = maps.Clone(conf.Services)
	} else {
		var err error
		if conf, err = baseCloud(c.Cloud); err != nil {
			return cloud.Configuration{}, err
		}
	}
	rm := conf.Services[cloud.ResourceManager]
	if c.ARMEndpoint != "" {
		rm.Endpoint = c.ARMEndpoint
	}
	if c.TokenAudience != "" {
		rm.Audience = c.TokenAudience
	}
	conf.Services[cloud.ResourceManager] = rm
	return conf, nil
}

// newHTTPClient returns an http.Client trusting the system pool plus caFile (if set).
func newHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read ca bundle: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read ca bundle %s: no PEM certificates found", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// The default transport keeps 2 idle connections per host; the operator talks to one host a lot.
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: tr}, nil
}

// newCredential builds the credential Auth asks for.
func newCredential(c Config, conf cloud.Configuration, transport policy.Transporter) (azcore.TokenCredential, error) {
	if c.Credential != nil {
		return c.Credential, nil
	}
	opts := azcore.ClientOptions{Cloud: conf, Transport: transport}
	switch c.Auth {
	case AuthNone:
		if err := checkLoopback(c.effectiveEndpoint()); err != nil {
			return nil, err
		}
		return staticCredential{}, nil
	case AuthWorkloadIdentity:
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: c.ClientID, TenantID: c.TenantID,
		})
		if err != nil {
			return nil, fmt.Errorf("create workload identity credential: %w", err)
		}
		return cred, nil
	case AuthManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if c.ClientID != "" {
			mo.ID = azidentity.ClientID(c.ClientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(mo)
		if err != nil {
			return nil, fmt.Errorf("create managed identity credential: %w", err)
		}
		return cred, nil
	default:
		// DefaultAzureCredential reads the client ID from AZURE_CLIENT_ID; it has no option for it.
		cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, TenantID: c.TenantID,
		})
		if err != nil {
			return nil, fmt.Errorf("create default azure credential: %w", err)
		}
		return cred, nil
	}
}

// staticCredential hands out a fixed dummy token; armsim accepts any bearer token.
type staticCredential struct{}

// GetToken returns a dummy token valid for a day.
func (staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "nicpool-armsim-dummy-token", ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}
