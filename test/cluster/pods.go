package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"

	"github.com/nicpool/nicpool/api/v1alpha1"
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

// AgentAllocations returns the IPs the node's agent records as held, with
// the container holding each, read on the agent's socket in the node's /run.
func (c *Cluster) AgentAllocations(ctx context.Context, n *Node) (map[string]string, error) {
	return c.TB.AgentAllocations(ctx, n.VM)
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
