package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nicpool/nicpool/nodeagent/server"
)

// AgentAllocations returns the IPs the VM's agent records as held, keyed by
// IP, with the container ID holding each, read from the introspection
// route on the agent's unix socket.
func (tb *Testbed) AgentAllocations(ctx context.Context, vm *VM) (map[string]string, error) {
	transport := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "unix", vm.SocketPath)
	}}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://nicpool-agent"+server.PathAllocations, nil)
	if err != nil {
		return nil, fmt.Errorf("build introspection request: %w", err)
	}
	resp, err := (&http.Client{Transport: transport, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("read allocations of %s: %w", vm.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body server.AllocationsResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode allocations of %s: %w", vm.Name, err)
	}
	held := map[string]string{}
	for _, r := range body.Allocations {
		held[r.IP] = r.ContainerID
	}
	return held, nil
}

// storesSettle bounds how long StoresMatchPods waits for the agents to
// finish DELs they have answered: an agent deletes a pod's host veth after
// answering the DEL and only then releases the IP, which on a loaded CI
// machine can trail the DEL by seconds. A leak stays, and fails after it.
const storesSettle = 60 * time.Second

// StoresMatchPods checks that each VM's agent records exactly the live pods
// given for that VM, each with its own IP: nothing leaked by a crash, nothing
// forgotten. It waits up to storesSettle for answered DELs to be finished.
func (tb *Testbed) StoresMatchPods(ctx context.Context, pods []*Pod) error {
	deadline := time.Now().Add(storesSettle)
	for {
		err := tb.storesMatchPods(ctx, pods)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (tb *Testbed) storesMatchPods(ctx context.Context, pods []*Pod) error {
	var problems []string
	for _, vm := range tb.VMs {
		held, err := tb.AgentAllocations(ctx, vm)
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.VM != vm {
				continue
			}
			if held[p.IP] != p.ContainerID {
				problems = append(problems, fmt.Sprintf("%s: pod %s holds %s but the agent records %q for it", vm.Name, p.Name, p.IP, held[p.IP]))
			}
			delete(held, p.IP)
		}
		var leaked []string
		for ip, id := range held {
			leaked = append(leaked, fmt.Sprintf("%s (container %.12s)", ip, id))
		}
		sort.Strings(leaked)
		if len(leaked) > 0 {
			problems = append(problems, fmt.Sprintf("%s: the agent records allocations no live pod holds: %s", vm.Name, strings.Join(leaked, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("agent stores and pods differ:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}
