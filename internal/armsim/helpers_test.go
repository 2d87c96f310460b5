package armsim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
)

const (
	testSub = "00000000-0000-0000-0000-000000000001"
	testRG  = "rg-test"
)

// fastPoll makes PollUntilDone rely on armsim's retry-after-ms hint rather than 30s.
var fastPoll = &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}

// env is a started emulator with an armnetwork NIC client pointed at it.
type env struct {
	srv  *armsim.Server
	nics *armnetwork.InterfacesClient
	vnet *armnetwork.VirtualNetworksClient
	sub  *armnetwork.SubnetsClient
}

func startEnv(t *testing.T, opts armsim.Options) *env { return startEnvTB(t, opts) }

func startEnvTB(t testing.TB, opts armsim.Options) *env {
	t.Helper()
	if opts.Topology == nil {
		opts.Topology = armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", "10.240.0.0/24", 3)
	}
	srv, co, cred := armsimtest.Start(t, opts)
	factory, err := armnetwork.NewClientFactory(testSub, cred, co)
	if err != nil {
		t.Fatalf("create client factory: %v", err)
	}
	return &env{srv: srv, nics: factory.NewInterfacesClient(), vnet: factory.NewVirtualNetworksClient(), sub: factory.NewSubnetsClient()}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// addSecondaries appends n dynamic secondary configurations named prefix-i to nic.
func addSecondaries(nic *armnetwork.Interface, prefix string, n int) {
	subnetID := nic.Properties.IPConfigurations[0].Properties.Subnet.ID
	for i := 0; i < n; i++ {
		nic.Properties.IPConfigurations = append(nic.Properties.IPConfigurations, &armnetwork.InterfaceIPConfiguration{
			Name: to.Ptr(prefix + "-" + itoa(i)),
			Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
				PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic),
				Subnet:                    &armnetwork.Subnet{ID: subnetID},
			},
		})
	}
}

func itoa(i int) string {
	return string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

// errCode extracts the ARM error code and status from err, failing when it is not an ARM error.
func errCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %v", err)
	}
	return re.StatusCode, re.ErrorCode
}

func mustResponseError(t interface {
	Helper()
	Fatalf(string, ...any)
}, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %v", err)
	}
	return re
}
