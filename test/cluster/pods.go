package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"

	"github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/nodeagent/server"
)

// Node returns the node of that name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// PodNetNS opens the network namespace of a running pod, found through its
// first container's process as containerd runs it on the pod's node. The
// caller closes it. A test uses it to act from inside a pod without an exec
// round trip through the API server per connection.
func (c *Cluster) PodNetNS(ctx context.Context, pod *corev1.Pod) (ns.NetNS, error) {
	n := c.Node(pod.Spec.NodeName)
	if n == nil {
		return nil, fmt.Errorf("pod %s is on unknown node %q", pod.Name, pod.Spec.NodeName)
	}
	if len(pod.Status.ContainerStatuses) == 0 {
		return nil, fmt.Errorf("pod %s has no container status yet", pod.Name)
	}
	id, ok := strings.CutPrefix(pod.Status.ContainerStatuses[0].ContainerID, "containerd://")
	if !ok {
		return nil, fmt.Errorf("pod %s: container ID %q is not containerd's", pod.Name, pod.Status.ContainerStatuses[0].ContainerID)
	}
	pid, err := n.taskPID(id)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	netns, err := ns.GetNS(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, fmt.Errorf("open network namespace of pod %s: %w", pod.Name, err)
	}
	return netns, nil
}

// taskPID is the PID of a container's main process on the node.
func (n *Node) taskPID(containerID string) (int, error) {
	out, err := run("ctr", "--address", n.socket(), "--namespace", "k8s.io", "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == containerID {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no task %s on %s", containerID, n.Name)
}

// ProcessesNamed lists the PIDs of the node's processes (daemons and
// containers) whose command name is comm, e.g. "nicpool-agent".
func (n *Node) ProcessesNamed(comm string) []int {
	var pids []int
	for _, pid := range cgroupPIDs(n.cgroup) {
		data, err := readProcFile(pid, "comm")
		if err == nil && strings.TrimSpace(data) == comm {
			pids = append(pids, pid)
		}
	}
	return pids
}

// agentIntrospectionAddr is where the chart's agent serves its read-only
// view, on the node's loopback (agent.introspectionPort).
const agentIntrospectionAddr = "127.0.0.1:9546"

// AgentAllocations returns the IPs the node's agent records as held, with
// the container holding each, from its introspection endpoint.
func (c *Cluster) AgentAllocations(ctx context.Context, n *Node) (map[string]string, error) {
	transport := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return dialIn(ctx, n.VM.NS, addr)
	}}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+agentIntrospectionAddr+server.PathAllocations, nil)
	if err != nil {
		return nil, fmt.Errorf("build introspection request: %w", err)
	}
	resp, err := (&http.Client{Transport: transport, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("read allocations of %s: %w", n.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body server.AllocationsResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode allocations of %s: %w", n.Name, err)
	}
	held := map[string]string{}
	for _, r := range body.Allocations {
		held[r.IP] = r.ContainerID
	}
	return held, nil
}

// NICIPs maps every nicpool IP configuration's address, as the simulated ARM
// holds it, to the name of the VM whose NIC carries it.
func (c *Cluster) NICIPs() map[string]string {
	byVMID := map[string]string{}
	for _, n := range c.Nodes {
		byVMID[strings.ToLower(n.VM.VMID)] = n.Name
	}
	out := map[string]string{}
	for _, nic := range c.TB.Sim.Snapshot().NICs {
		for _, cfg := range nic.IPConfigs {
			if !cfg.Primary && strings.HasPrefix(cfg.Name, v1alpha1.IPConfigurationPrefix) {
				out[cfg.IP] = byVMID[strings.ToLower(nic.VMID)]
			}
		}
	}
	return out
}

// NICIPCount is the number of nicpool IP configurations on a node's NIC.
func (c *Cluster) NICIPCount(n *Node) int {
	count := 0
	for _, vm := range c.NICIPs() {
		if vm == n.Name {
			count++
		}
	}
	return count
}
