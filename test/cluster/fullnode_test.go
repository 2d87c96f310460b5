package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nicpool/nicpool/internal/pool"
)

// TestFullNode fills one node to nicpool's 250 pod IPs with pods pinned to
// it, shows that one more pod stays ContainerCreating with the reason in its
// events, and scales back down to nothing: no IP leaks and the NIC ends
// where the pool policy says.
func TestFullNode(t *testing.T) {
	installed(t)
	ctx := context.Background()
	const namespace, name = "full", "full"
	createNamespace(t, namespace)
	// The node with the fewest pod IPs (CoreDNS may hold some) is filled
	// to exactly 250, so the count must be settled first: pods of earlier
	// tests still terminating hold IPs they give back later (seen: the
	// fill counted one, made 249 pods, and the "251st" got the freed IP).
	used := settledPodIPs(ctx, t)
	node := cl.Nodes[0]
	for _, n := range cl.Nodes {
		if used[n.Name] < used[node.Name] {
			node = n
		}
	}
	replicas := int32(pool.MaxIPsPerNode - used[node.Name])
	dep := cl.EchoDeployment(namespace, name, replicas, node.Name)
	// 250 readiness probes would keep a 2-core machine's kubelet busy;
	// Running is what this test needs.
	dep.Spec.Template.Spec.Containers[0].ReadinessProbe = nil
	if _, err := cl.Clientset.AppsV1().Deployments(namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := cl.WaitReplicasReady(ctx, namespace, name, 8*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d pods on %s ready in %s.", replicas, node.Name, time.Since(t0).Round(time.Second))
	pods, err := cl.Pods(ctx, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	checkPodIPs(t, pods, int(replicas))
	if got := cl.NICIPCount(node); got != pool.MaxIPsPerNode {
		t.Errorf("%s's NIC holds %d nicpool IPs, want %d", node.Name, got, pool.MaxIPsPerNode)
	}

	t.Run("the 251st pod stays ContainerCreating and says why", func(t *testing.T) {
		extra := cl.EchoDeployment(namespace, "overflow", 1, node.Name).Spec.Template
		extra.Name = "overflow"
		p := &corev1.Pod{ObjectMeta: extra.ObjectMeta, Spec: extra.Spec}
		p.Namespace = namespace
		if _, err := cl.Clientset.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var describe string
		err := waitUntil(ctx, 2*time.Minute, func() error {
			out, err := cl.Kubectl(ctx, "describe", "pod", "-n", namespace, "overflow")
			if err != nil {
				return err
			}
			describe = out
			if !strings.Contains(out, "FailedCreatePodSandBox") || !strings.Contains(out, "its maximum") {
				return fmt.Errorf("no FailedCreatePodSandBox event naming the node's maximum yet")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, describe)
		}
		got, err := cl.Clientset.CoreV1().Pods(namespace).Get(ctx, "overflow", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.PodIP != "" || got.Status.Phase != corev1.PodPending {
			t.Fatalf("the 251st pod is %s with IP %q, want Pending without an IP", got.Status.Phase, got.Status.PodIP)
		}
		if cs := got.Status.ContainerStatuses; len(cs) == 0 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "ContainerCreating" {
			t.Fatalf("the 251st pod's container state is %+v, want waiting in ContainerCreating", cs)
		}
		if err := cl.Clientset.CoreV1().Pods(namespace).Delete(ctx, "overflow", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("scaling down returns every IP", func(t *testing.T) {
		ips := map[string]string{}
		for _, p := range pods {
			ips[p.Status.PodIP] = p.Name
		}
		scale(t, namespace, name, 0)
		err := waitUntil(ctx, 4*time.Minute, func() error {
			left, err := cl.Pods(ctx, namespace, name)
			if err != nil {
				return err
			}
			if len(left) > 0 {
				return fmt.Errorf("%d pods left", len(left))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		checkIPsReturned(t, namespace, ips)
	})
}

func scale(t *testing.T, namespace, name string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	s, err := cl.Clientset.AppsV1().Deployments(namespace).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = replicas
	if _, err := cl.Clientset.AppsV1().Deployments(namespace).UpdateScale(ctx, name, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// settledPodIPs waits until no pod on the nodes is terminating and every
// node's agent records exactly as many allocations as the node has pods in
// the pod network, and returns those counts per node.
func settledPodIPs(ctx context.Context, t *testing.T) map[string]int {
	t.Helper()
	var used map[string]int
	err := waitUntil(ctx, 3*time.Minute, func() error {
		list, err := cl.Clientset.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range list.Items {
			if !p.Spec.HostNetwork && p.DeletionTimestamp != nil {
				return fmt.Errorf("pod %s/%s is still terminating", p.Namespace, p.Name)
			}
		}
		if used, err = cl.PodIPsOnNodes(ctx); err != nil {
			return err
		}
		for _, n := range cl.Nodes {
			allocs, err := cl.AgentAllocations(ctx, n)
			if err != nil {
				return err
			}
			if len(allocs) != used[n.Name] {
				return fmt.Errorf("%s's agent holds %d allocations for %d pods", n.Name, len(allocs), used[n.Name])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return used
}
