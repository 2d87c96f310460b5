package cluster_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nicpool/nicpool/test/cluster"
)

// TestAgentKilledDuringScaleUp kills the node agent with SIGKILL while a
// Deployment pinned to its node scales up: kubelet restarts the DaemonSet's
// container, every pod ends Running, no pod that ran before lost its IP and
// no two pods share one, and the agent's record matches the pods exactly.
func TestAgentKilledDuringScaleUp(t *testing.T) {
	installed(t)
	ctx := context.Background()
	const namespace, name = "crash", "crash"
	createNamespace(t, namespace)
	node := cl.Nodes[len(cl.Nodes)-1]
	dep := cl.EchoDeployment(namespace, name, 10, node.Name)
	if _, err := cl.Clientset.AppsV1().Deployments(namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitReplicasReady(ctx, namespace, name, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	before, err := cl.Pods(ctx, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	agents := node.ProcessesNamed("nicpool-agent")
	if len(agents) != 1 {
		t.Fatalf("%d nicpool-agent processes on %s, want 1", len(agents), node.Name)
	}
	restarts := agentRestarts(t, node)

	scale(t, namespace, name, 40)
	// Kill the agent while pods are being created on the node.
	err = waitUntil(ctx, 30*time.Second, func() error {
		pods, err := cl.Pods(ctx, namespace, name)
		if err != nil {
			return err
		}
		if len(pods) <= len(before) {
			return fmt.Errorf("scale-up not started")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(agents[0], syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the agent (pid %d): %v", agents[0], err)
	}
	t.Logf("Killed the agent (pid %d) on %s during the scale-up.", agents[0], node.Name)
	err = waitUntil(ctx, 2*time.Minute, func() error {
		if got := agentRestarts(t, node); got <= restarts {
			return fmt.Errorf("agent restarts %d, was %d", got, restarts)
		}
		if len(node.ProcessesNamed("nicpool-agent")) != 1 {
			return fmt.Errorf("no agent process running again")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitReplicasReady(ctx, namespace, name, 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	after, err := cl.Pods(ctx, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	checkPodIPs(t, after, 40)
	now := map[string]string{}
	for _, p := range after {
		now[p.Name] = p.Status.PodIP
	}
	for _, p := range before {
		if now[p.Name] != p.Status.PodIP {
			t.Errorf("pod %s held %s before the crash and %q after", p.Name, p.Status.PodIP, now[p.Name])
		}
	}
	err = waitUntil(ctx, time.Minute, func() error {
		held, err := cl.AgentAllocations(ctx, node)
		if err != nil {
			return err
		}
		for _, p := range after {
			if _, ok := held[p.Status.PodIP]; !ok {
				return fmt.Errorf("agent does not record %s of pod %s", p.Status.PodIP, p.Name)
			}
		}
		pods, err := cl.PodIPsOnNodes(ctx)
		if err != nil {
			return err
		}
		if len(held) != pods[node.Name] {
			return fmt.Errorf("agent records %d allocations for %d pods with an IP on %s", len(held), pods[node.Name], node.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, p := range after {
		ips[p.Status.PodIP] = p.Name
	}
	if err := cl.Clientset.AppsV1().Deployments(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	checkIPsReturned(t, namespace, ips)
}

// agentRestarts is the restart count of the agent pod on the node.
func agentRestarts(t *testing.T, node *cluster.Node) int32 {
	t.Helper()
	list, err := cl.Clientset.CoreV1().Pods(cluster.NicpoolNamespace).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=nicpool-agent", FieldSelector: "spec.nodeName=" + node.Name,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || len(list.Items[0].Status.ContainerStatuses) == 0 {
		t.Fatalf("%d agent pods on %s", len(list.Items), node.Name)
	}
	return list.Items[0].Status.ContainerStatuses[0].RestartCount
}
