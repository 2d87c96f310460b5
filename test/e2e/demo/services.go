package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/nicpool/nicpool/controllers"
	"github.com/nicpool/nicpool/test/cluster"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// serviceLBValues are the chart values that turn Services of type
// LoadBalancer on, with internal frontends on the nodes' subnet.
func serviceLBValues() []string {
	return []string{
		"serviceLoadBalancers.enabled=true",
		"serviceLoadBalancers.subnetID=/subscriptions/" + testbed.SubscriptionID + "/resourceGroups/" + testbed.ResourceGroup +
			"/providers/Microsoft.Network/virtualNetworks/vnet-e2e/subnets/nodes",
	}
}

// serviceLBs creates an internal and a public Service of type LoadBalancer
// with nicpool's class over the demo Deployment, and reaches them from
// on-premises and from the internet namespace: the pods answer and report
// the client's own address as the source.
func (d *demo) serviceLBs(ctx context.Context) error {
	tb := d.c.TB
	step("Services of type LoadBalancer with loadBalancerClass %s (docs/services.md): web-internal (%s: \"true\") and web-public; "+
		"their Azure backend pools hold the pods' own IP configurations, from the ready endpoints.", controllers.LoadBalancerClass, controllers.AnnotationLBInternal)
	var manifest []byte
	for _, internal := range []bool{true, false} {
		svc := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: "web-public", Namespace: demoNamespace},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(controllers.LoadBalancerClass),
				Selector: map[string]string{"app": demoApp},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(cluster.EchoHTTPPort)}}},
		}
		if internal {
			svc.Name, svc.Annotations = "web-internal", map[string]string{controllers.AnnotationLBInternal: "true"}
		}
		b, err := yaml.Marshal(svc)
		if err != nil {
			return fmt.Errorf("render service manifest: %w", err)
		}
		manifest = append(append(manifest, b...), []byte("---\n")...)
	}
	path := filepath.Join(d.work, "web-lb.yaml")
	if err := os.WriteFile(path, manifest, 0o600); err != nil {
		return fmt.Errorf("write service manifest: %w", err)
	}
	if err := d.kubectl(ctx, "apply", "-f", path); err != nil {
		return err
	}
	addr := map[string]string{}
	for _, name := range []string{"web-internal", "web-public"} {
		ip, err := d.waitIngress(ctx, name)
		if err != nil {
			d.problem("%v", err)
			return nil
		}
		addr[name] = ip
	}
	if err := d.kubectl(ctx, "get", "services", "-n", demoNamespace, "-o", "wide"); err != nil {
		return err
	}
	rows := []struct {
		svc  string
		site *testbed.Site
	}{{"web-internal", tb.Sites["onprem"]}, {"web-public", tb.Sites["internet"]}}
	for _, r := range rows {
		d.reachService(ctx, r.svc, addr[r.svc], r.site)
	}
	return nil
}

// waitIngress waits for the Service's frontend address (the operator's
// pass, the load balancer write: seconds; bounded for a loaded machine).
func (d *demo) waitIngress(ctx context.Context, name string) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		svc, err := d.c.Clientset.CoreV1().Services(demoNamespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			return svc.Status.LoadBalancer.Ingress[0].IP, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("service %s got no load balancer address within 2m (last error %v)", name, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// reachService GETs the Service's frontend from site until pods answer
// (memberships and probes take seconds), then six times, printing which pod
// answered and the source it saw.
func (d *demo) reachService(ctx context.Context, name, ip string, site *testbed.Site) {
	url := fmt.Sprintf("http://%s/", ip)
	var r cluster.EchoReport
	var err error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if r, err = cluster.GetFrom(ctx, site.NS, url); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		d.problem("%s at %s from %s: %v", name, url, site.Name, err)
		return
	}
	var answered []string
	for i := 0; i < 6; i++ {
		if i > 0 {
			if r, err = cluster.GetFrom(ctx, site.NS, url); err != nil {
				d.problem("%s at %s from %s: %v", name, url, site.Name, err)
				return
			}
		}
		answered = append(answered, r.Hostname)
		if r.SourceIP() != site.HostIP {
			d.problem("%s: pod %s saw source %s, want the client's %s", name, r.Hostname, r.SourceIP(), site.HostIP)
		}
	}
	fmt.Printf("  %-12s from %-8s (%s) GET %-22s answered by %s; every pod saw the source %s (the client's own address: no node hop, no SNAT)\n",
		name, site.Name, site.HostIP, url, strings.Join(answered, ", "), site.HostIP)
}
