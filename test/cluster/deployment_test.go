package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/test/cluster"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// TestDeployment runs a 30-pod Deployment created through the API and
// started by kubelets and containerd, then uses it through a Service.
func TestDeployment(t *testing.T) {
	installed(t)
	ctx := context.Background()
	const namespace, name, replicas = "web", "web", 30
	createNamespace(t, namespace)
	if _, err := cl.Clientset.AppsV1().Deployments(namespace).Create(ctx, cl.EchoDeployment(namespace, name, replicas, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := cl.WaitReplicasReady(ctx, namespace, name, 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d pods ready %s after the Deployment was created.", replicas, time.Since(t0).Round(time.Second))
	pods, err := cl.Pods(ctx, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	svc := createService(t, namespace, name)

	t.Run("every pod has a unique VNet IP on its own node's NIC", func(t *testing.T) {
		checkPodIPs(t, pods, replicas)
	})
	t.Run("ClusterIP from a pod on another node reaches every endpoint", func(t *testing.T) {
		client := pods[0]
		podNS, err := cl.PodNetNS(ctx, &client)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = podNS.Close() }()
		want := map[string]bool{}
		remote := 0
		for _, p := range pods {
			want[p.Name] = true
			if p.Spec.NodeName != client.Spec.NodeName {
				remote++
			}
		}
		if remote == 0 {
			t.Fatalf("every pod is on %s; the Deployment was meant to spread", client.Spec.NodeName)
		}
		url := fmt.Sprintf("http://%s/", svc.Spec.ClusterIP)
		seen := map[string]bool{}
		err = waitUntil(ctx, 90*time.Second, func() error {
			for range 20 {
				r, err := cluster.GetFrom(ctx, podNS, url)
				if err != nil {
					return err
				}
				// kube-proxy masquerades only hairpin traffic (the client
				// reaching itself); every other endpoint sees the pod's IP.
				if r.Hostname != client.Name && r.SourceIP() != client.Status.PodIP {
					t.Fatalf("endpoint %s saw source %s, want the client pod's own IP %s", r.Hostname, r.Source, client.Status.PodIP)
				}
				seen[r.Hostname] = true
			}
			if len(seen) < len(want) {
				return fmt.Errorf("%d of %d endpoints answered", len(seen), len(want))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for h := range seen {
			if !want[h] {
				t.Errorf("answer from %s, which is not a pod of the Deployment", h)
			}
		}
	})
	t.Run("the Service's DNS name resolves from a pod through CoreDNS", func(t *testing.T) {
		fqdn := fmt.Sprintf("%s.%s.svc.cluster.local", name, namespace)
		out, err := cl.Kubectl(ctx, "exec", "-n", namespace, pods[1].Name, "--", "/echo", "resolve", fqdn)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != svc.Spec.ClusterIP {
			t.Fatalf("%s resolved to %q, want %s", fqdn, strings.TrimSpace(out), svc.Spec.ClusterIP)
		}
		out, err = cl.Kubectl(ctx, "exec", "-n", namespace, pods[1].Name, "--", "/echo", "get", "http://"+fqdn+"/")
		if err != nil {
			t.Fatal(err)
		}
		var r cluster.EchoReport
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Hostname == "" {
			t.Fatalf("GET %s from %s answered %q (%v)", fqdn, pods[1].Name, out, err)
		}
	})
	t.Run("NodePort from on-premises", func(t *testing.T) {
		onprem := cl.TB.Sites["onprem"].NS
		port := svc.Spec.Ports[0].NodePort
		for _, n := range cl.Nodes {
			url := fmt.Sprintf("http://%s:%d/", n.VM.PrimaryIP, port)
			var r cluster.EchoReport
			err := waitUntil(ctx, 30*time.Second, func() error {
				var err error
				r, err = cluster.GetFrom(ctx, onprem, url)
				return err
			})
			if err != nil {
				t.Fatalf("GET %s from on-premises: %v", url, err)
			}
			if !strings.HasPrefix(r.Hostname, name+"-") {
				t.Errorf("GET %s answered from %q, not a pod of the Deployment", url, r.Hostname)
			}
		}
	})
	t.Run("deleting the Deployment returns every IP", func(t *testing.T) {
		ips := map[string]string{}
		for _, p := range pods {
			ips[p.Status.PodIP] = p.Name
		}
		if err := cl.Clientset.AppsV1().Deployments(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		checkIPsReturned(t, namespace, ips)
	})
}

func createService(t *testing.T, namespace, name string) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt(cluster.EchoHTTPPort)}},
		},
	}
	svc, err := cl.Clientset.CoreV1().Services(namespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// checkPodIPs asserts that the pods are Running, hold distinct IPs of the
// VNet, and that ARM shows each IP on the NIC of the pod's own node.
func checkPodIPs(t *testing.T, pods []corev1.Pod, want int) {
	t.Helper()
	if len(pods) != want {
		t.Fatalf("%d pods, want %d", len(pods), want)
	}
	vnet := netip.MustParsePrefix(testbed.VNetCIDR)
	onNIC := cl.NICIPs()
	owner := map[string]string{}
	for _, p := range pods {
		ip := p.Status.PodIP
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s", p.Name, p.Status.Phase)
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil || !vnet.Contains(addr) {
			t.Errorf("pod %s has IP %q, not a VNet address", p.Name, ip)
			continue
		}
		if prev, dup := owner[ip]; dup {
			t.Errorf("IP %s held by %s and %s", ip, prev, p.Name)
		}
		owner[ip] = p.Name
		if onNIC[ip] != p.Spec.NodeName {
			t.Errorf("pod %s on %s holds %s, which ARM has on %q", p.Name, p.Spec.NodeName, ip, onNIC[ip])
		}
	}
}

// checkIPsReturned waits until the pods holding ips (IP -> pod name) are gone
// from the API server, which kubelet allows only once their sandboxes, and so
// their CNI DELs, are done, and then until no agent records any of the IPs
// and every NIC is back to what the pool policy wants for the pods left.
func checkIPsReturned(t *testing.T, namespace string, ips map[string]string) {
	t.Helper()
	ctx := context.Background()
	// kubelet tears pods down a few at a time: 250 of them took over 4
	// minutes on a 2-core machine running the other test packages too.
	err := waitUntil(ctx, 10*time.Minute, func() error {
		list, err := cl.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		left := 0
		for _, p := range list.Items {
			if p.Status.PodIP != "" && ips[p.Status.PodIP] == p.Name {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d of the %d pods are still being torn down", left, len(ips))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = waitUntil(ctx, 2*time.Minute, func() error {
		for _, n := range cl.Nodes {
			held, err := cl.AgentAllocations(ctx, n)
			if err != nil {
				return err
			}
			for ip := range held {
				if pod, ok := ips[ip]; ok {
					return fmt.Errorf("%s's agent still records %s of pod %s", n.Name, ip, pod)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	policy := pool.DefaultConfig()
	err = waitUntil(ctx, releaseCooldown+2*time.Minute, func() error {
		used, err := cl.PodIPsOnNodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range cl.Nodes {
			want := pool.Target(policy, used[n.Name], 0)
			if got := cl.NICIPCount(n); got != want {
				return fmt.Errorf("%s's NIC holds %d nicpool IPs, the policy wants %d for %d pods", n.Name, got, want, used[n.Name])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
