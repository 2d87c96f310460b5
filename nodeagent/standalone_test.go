package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

const standaloneSub = "00000000-0000-0000-0000-000000000015"

// standaloneTopology is one VNet with two VMs; vm-0 has three secondary
// IP configurations an administrator created.
func standaloneTopology() *armsim.Topology {
	t := armsim.GenerateTopology(standaloneSub, "rg-docker", "10.60.0.0/16", "10.60.1.0/24", 2)
	t.NICs[0].PrimaryIP = "10.60.1.10"
	t.NICs[0].ExtraIPConfigs = []string{"docker-1", "docker-2", "docker-3"}
	return t
}

// runAgent runs the agent until the test ends (or stop is called) and
// returns its options and a stop function that waits for Run's return.
func runAgent(t *testing.T, dir string, mod func(*Options), d Deps) (Options, func() error) {
	t.Helper()
	o := DefaultOptions()
	o.SocketPath, o.StateDir = filepath.Join(dir, "run", "agent.sock"), filepath.Join(dir, "state")
	o.MetricsAddr, o.HealthAddr = "", ""
	o.Standalone.Resync = 200 * time.Millisecond
	mod(&o)
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.Registry, d.Log = prometheus.NewRegistry(), testr.New(t)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, d) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return o, stop
}

// allocate asks the agent over its socket, retrying while the socket is not
// there yet; an answer from the agent (IP or error) ends it.
func allocate(ctx context.Context, c *agentapi.Client, id string) (string, error) {
	att := agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: id, IfName: "eth0"}}
	for {
		resp, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: att})
		var apiErr *agentapi.Error
		switch {
		case err == nil:
			return resp.IP, nil
		case errors.As(err, &apiErr) || ctx.Err() != nil:
			return "", err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStandaloneIMDS runs the agent without Kubernetes on the IMDS source:
// it hands out exactly the administrator's three secondary IPs (never the
// primary), installs the CNI configuration, and keeps its socket and state
// private.
func TestStandaloneIMDS(t *testing.T) {
	sim, err := armsim.New(armsim.Options{Topology: standaloneTopology()})
	if err != nil {
		t.Fatal(err)
	}
	h := sim.IMDSHandler()
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = "10.60.1.10:40000" // what the testbed's fabric delivers from vm-0
		h.ServeHTTP(w, r)
	}))
	defer imds.Close()
	dir := t.TempDir()
	inst := &fakeInstaller{}
	o, stop := runAgent(t, dir, func(o *Options) {
		o.PoolSource, o.Standalone.IMDSEndpoint = PoolSourceIMDS, imds.URL
		o.AllocTimeout = time.Second
	}, Deps{Installer: inst})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // generous: a loaded CI machine
	defer cancel()
	c := agentapi.NewClient(o.SocketPath)
	got := map[string]bool{}
	for i := range 3 {
		ip, err := allocate(ctx, c, fmt.Sprint("ctr", i))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if ip == "10.60.1.10" || got[ip] || !strings.HasPrefix(ip, "10.60.1.") {
			t.Fatalf("allocation %d got %s (primary, duplicate or outside the subnet)", i, ip)
		}
		got[ip] = true
	}
	if _, err := allocate(ctx, c, "ctr-extra"); !tryAgainLater(err) {
		t.Fatalf("a fourth allocation from three pre-provisioned IPs: %v, want try again later", err)
	}
	eventually(t, "the CNI configuration is installed", inst.Installed)
	for path, want := range map[string]os.FileMode{o.StateDir: 0o700, filepath.Dir(o.SocketPath): 0o700, o.SocketPath: 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestStandaloneARM runs the agent without Kubernetes on the ARM source: a
// burst of allocations on an empty NIC gets unique VNet IPs that armsim
// holds as nicpool IP configurations of the VM's own NIC.
func TestStandaloneARM(t *testing.T) {
	sim, co, cred := armsimtest.Start(t, armsim.Options{Topology: standaloneTopology()})
	nics, err := azure.NewNICClient(azure.Config{ClientOptions: co, Credential: cred, LROTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vm := "/subscriptions/" + standaloneSub + "/resourceGroups/rg-docker/providers/Microsoft.Compute/virtualMachines/vm-0"
	o, stop := runAgent(t, dir, func(o *Options) {
		o.PoolSource, o.Standalone.VMID = PoolSourceARM, vm
		o.Standalone.Azure = azure.Config{ARMEndpoint: sim.URL(), Auth: azure.AuthNone}
	}, Deps{NICs: nics})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // generous: a loaded CI machine
	defer cancel()
	c := agentapi.NewClient(o.SocketPath)
	const n = 30
	ips := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			for ctx.Err() == nil {
				if ips[i], err = allocate(ctx, c, fmt.Sprint("burst", i)); !tryAgainLater(err) {
					break
				}
			}
			if err != nil {
				t.Errorf("allocation %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	onNIC := map[string]bool{}
	for _, nic := range sim.Snapshot().NICs {
		if nic.Name != "vm-0-nic" {
			continue
		}
		for _, cfg := range nic.IPConfigs {
			if strings.HasPrefix(cfg.Name, "nicpool-") {
				onNIC[cfg.IP] = true
			}
		}
	}
	seen := map[string]bool{}
	for i, ip := range ips {
		if ip == "" || seen[ip] || !onNIC[ip] {
			t.Fatalf("allocation %d got %q (empty, duplicate, or not a nicpool configuration of vm-0's NIC)", i, ip)
		}
		seen[ip] = true
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func tryAgainLater(err error) bool {
	var e *agentapi.Error
	return errors.As(err, &e) && e.Code == agentapi.CodeTryAgainLater
}
