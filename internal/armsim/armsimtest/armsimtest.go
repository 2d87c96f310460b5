// Package armsimtest starts an armsim emulator for tests and returns azcore client
// options that point the real armnetwork clients at it.
package armsimtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/nicpool/nicpool/internal/armsim"
)

// Start runs an emulator on a loopback port for the duration of the test and returns it
// with client options (cloud endpoint, trusted CA, fast retries) and a static credential.
// Retries use short delays; a 429 whose Retry-After exceeds 200ms is returned to the
// caller instead of being retried, so throttling stays observable.
func Start(t testing.TB, opts armsim.Options) (*armsim.Server, *arm.ClientOptions, azcore.TokenCredential) {
	t.Helper()
	var done atomic.Bool
	if opts.Logf == nil {
		// Requests still running when the test ends must not log through t.
		opts.Logf = func(format string, args ...any) {
			if !done.Load() {
				t.Logf(format, args...)
			}
		}
	}
	srv, err := armsim.New(opts)
	if err != nil {
		t.Fatalf("create armsim: %v", err)
	}
	if err := srv.Start(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatalf("start armsim: %v", err)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		done.Store(true)
	})
	co, err := ClientOptions(srv)
	if err != nil {
		t.Fatalf("armsim client options: %v", err)
	}
	return srv, co, Credential{}
}

// ClientOptions returns ARM client options for a started server.
func ClientOptions(srv *armsim.Server) (*arm.ClientOptions, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CACertPEM()) {
		return nil, errNoCA
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
	}
	return &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: "https://login.armsim.invalid/",
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: srv.URL()},
				},
			},
			Transport: &http.Client{Transport: transport},
			Retry: policy.RetryOptions{
				MaxRetries:    3,
				RetryDelay:    5 * time.Millisecond,
				MaxRetryDelay: 200 * time.Millisecond,
			},
		},
		DisableRPRegistration: true,
	}, nil
}

// Credential is a static TokenCredential; armsim accepts any bearer token.
type Credential struct{}

// GetToken returns a fixed token valid for an hour.
func (Credential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "armsim-test-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type errString string

func (e errString) Error() string { return string(e) }

const errNoCA = errString("armsim server has no CA certificate: was it started?")
