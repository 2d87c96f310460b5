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

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/nodeagent/server"
)

// introspectionAddr is where every agent serves its read-only view, on the
// loopback of its own VM namespace.
const introspectionAddr = "127.0.0.1:9101"

// AgentAllocations returns the IPs the VM's agent records as held, keyed by
// IP, with the container ID holding each, read from its introspection
// endpoint inside the VM namespace.
func (tb *Testbed) AgentAllocations(ctx context.Context, vm *VM) (map[string]string, error) {
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := vm.NS.Do(func(ns.NetNS) error {
			var err error
			if c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr); err != nil {
				return fmt.Errorf("dial %s: %w", addr, err)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("in %s: %w", vm.NS.Name, err)
		}
		return c, nil
	}}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+introspectionAddr+server.PathAllocations, nil)
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
