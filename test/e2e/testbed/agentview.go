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

// StoresMatchPods checks that each VM's agent records exactly the live pods
// given for that VM, each with its own IP: nothing leaked by a crash, nothing
// forgotten.
func (tb *Testbed) StoresMatchPods(ctx context.Context, pods []*Pod) error {
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
