package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/test/cluster"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

const demoNamespace, demoApp = "demo", "web"

type demo struct {
	c        *cluster.Cluster
	opts     options
	work     string
	problems []string
	pods     []corev1.Pod
	svc      *corev1.Service
	client   corev1.Pod
}

func (d *demo) run(ctx context.Context) error {
	steps := []func(context.Context) error{d.install, d.deploy, d.service, d.nodePort, d.serviceLBs, d.matrix, d.azure}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return err
		}
	}
	return nil
}

// kubectl prints a kubectl command and its output.
func (d *demo) kubectl(ctx context.Context, args ...string) error {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	out, err := d.c.Kubectl(ctx, args...)
	fmt.Print(out)
	return err
}

func (d *demo) install(ctx context.Context) error {
	step("The nodes registered; without a pod network they are NotReady.")
	if err := d.kubectl(ctx, "get", "nodes", "-o", "wide"); err != nil {
		return err
	}
	step("Installing nicpool: helm install nicpool charts/nicpool -n %s (operator pointed at the simulated ARM), and CoreDNS.", cluster.NicpoolNamespace)
	t0 := time.Now()
	if err := d.c.InstallNicpool(ctx); err != nil {
		return err
	}
	if err := d.c.WaitNodesReady(ctx, 3*time.Minute); err != nil {
		return err
	}
	fmt.Printf("Every node Ready %s after helm install: each agent installed its conflist once its pool had IPs.\n", time.Since(t0).Round(time.Second))
	if err := d.c.WaitReplicasReady(ctx, "kube-system", "coredns", 2*time.Minute); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "get", "nodes", "-o", "wide"); err != nil {
		return err
	}
	return d.kubectl(ctx, "get", "pods", "-n", cluster.NicpoolNamespace, "-o", "wide")
}

func (d *demo) deploy(ctx context.Context) error {
	step("Creating a Deployment of %d echo pods and a NodePort Service with kubectl.", d.opts.pods)
	dep := d.c.EchoDeployment(demoNamespace, demoApp, int32(d.opts.pods), "")
	dep.APIVersion, dep.Kind = "apps/v1", "Deployment"
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: demoApp, Namespace: demoNamespace},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": demoApp},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	svc.Spec.Ports[0].TargetPort.IntVal = cluster.EchoHTTPPort
	var manifest []byte
	for _, obj := range []any{dep, svc} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("render demo manifest: %w", err)
		}
		manifest = append(append(manifest, b...), []byte("---\n")...)
	}
	path := filepath.Join(d.work, "web.yaml")
	if err := os.WriteFile(path, manifest, 0o600); err != nil {
		return fmt.Errorf("write demo manifest: %w", err)
	}
	if err := d.kubectl(ctx, "create", "namespace", demoNamespace); err != nil {
		return err
	}
	t0 := time.Now()
	if err := d.kubectl(ctx, "apply", "-f", path); err != nil {
		return err
	}
	if err := d.c.WaitReplicasReady(ctx, demoNamespace, demoApp, 4*time.Minute); err != nil {
		return err
	}
	fmt.Printf("%d pods Running %s after kubectl apply.\n", d.opts.pods, time.Since(t0).Round(time.Second))
	if err := d.kubectl(ctx, "get", "pods", "-n", demoNamespace, "-o", "wide", "--sort-by=.spec.nodeName"); err != nil {
		return err
	}
	pods, err := d.c.Pods(ctx, demoNamespace, demoApp)
	if err != nil {
		return err
	}
	d.pods = pods
	d.checkInvariants()
	return d.kubectl(ctx, "get", "nodeippools", "-o", "wide")
}

// checkInvariants: unique VNet IPs, each on its own node's NIC per ARM.
func (d *demo) checkInvariants() {
	onNIC := d.c.NICIPs()
	owner := map[string]string{}
	perNode := map[string]int{}
	for _, p := range d.pods {
		ip := p.Status.PodIP
		if prev, dup := owner[ip]; dup {
			d.problem("IP %s held by %s and %s", ip, prev, p.Name)
		}
		owner[ip] = p.Name
		if onNIC[ip] != p.Spec.NodeName {
			d.problem("pod %s on %s holds %s, which ARM has on %q", p.Name, p.Spec.NodeName, ip, onNIC[ip])
		}
		perNode[p.Spec.NodeName]++
	}
	var spread []string
	for _, n := range d.c.Nodes {
		spread = append(spread, fmt.Sprintf("%s %d", n.Name, perNode[n.Name]))
	}
	fmt.Printf("Pods per node: %s. %d unique VNet IPs, each on its own node's NIC in ARM.\n", strings.Join(spread, ", "), len(owner))
}

func (d *demo) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Println("PROBLEM: " + msg)
	d.problems = append(d.problems, msg)
}

func (d *demo) failed() error {
	if len(d.problems) > 0 {
		return fmt.Errorf("%d checks failed:\n  %s", len(d.problems), strings.Join(d.problems, "\n  "))
	}
	return nil
}

func (d *demo) service(ctx context.Context) error {
	svc, err := d.c.Clientset.CoreV1().Services(demoNamespace).Get(ctx, demoApp, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get service: %w", err)
	}
	d.svc = svc
	d.client = d.pods[0]
	node := map[string]string{}
	for _, p := range d.pods {
		node[p.Name] = p.Spec.NodeName
	}
	fqdn := fmt.Sprintf("%s.%s.svc.cluster.local", demoApp, demoNamespace)
	step("From pod %s (%s, on %s): the Service's DNS name through CoreDNS, then its ClusterIP.", d.client.Name, d.client.Status.PodIP, d.client.Spec.NodeName)
	if err := d.kubectl(ctx, "exec", "-n", demoNamespace, d.client.Name, "--", "/echo", "resolve", fqdn); err != nil {
		d.problem("resolve %s: %v", fqdn, err)
	}
	other := 0
	for i := 0; i < 12 && other < 3; i++ {
		args := []string{"exec", "-n", demoNamespace, d.client.Name, "--", "/echo", "get", "http://" + fqdn + "/"}
		out, err := d.c.Kubectl(ctx, args...)
		if err != nil {
			d.problem("GET http://%s/ from %s: %v", fqdn, d.client.Name, err)
			break
		}
		r, err := parseReport(out)
		if err != nil {
			d.problem("%v", err)
			break
		}
		if node[r.Hostname] == d.client.Spec.NodeName {
			continue
		}
		other++
		fmt.Printf("$ kubectl %s\n  answered by %s on %s, which saw the source %s (the client pod's own IP: no SNAT inside the VNet)\n",
			strings.Join(args, " "), r.Hostname, node[r.Hostname], r.SourceIP())
		if r.SourceIP() != d.client.Status.PodIP {
			d.problem("%s saw source %s, want %s", r.Hostname, r.SourceIP(), d.client.Status.PodIP)
		}
	}
	if other == 0 {
		d.problem("no answer through the Service came from a pod on another node")
	}
	return nil
}

func (d *demo) nodePort(ctx context.Context) error {
	port := d.svc.Spec.Ports[0].NodePort
	onprem := d.c.TB.Sites["onprem"]
	step("From the on-premises network (%s): the Service's NodePort %d on every node.", onprem.HostIP, port)
	for _, n := range d.c.Nodes {
		url := fmt.Sprintf("http://%s:%d/", n.VM.PrimaryIP, port)
		var r cluster.EchoReport
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			if r, err = cluster.GetFrom(ctx, onprem.NS, url); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			d.problem("NodePort %s from on-premises: %v", url, err)
			continue
		}
		fmt.Printf("  GET %-28s answered by %s (source seen %s)\n", url, r.Hostname, r.SourceIP())
	}
	return nil
}

func (d *demo) matrix(ctx context.Context) error {
	a, b, c, f, err := d.matrixPods(ctx)
	if err != nil {
		return err
	}
	step("Connectivity from the kubelet-created pods %s and %s (on %s) and %s (on %s); each destination reports the source it saw.",
		a.Name, c.Name, a.VM.Name, b.Name, b.VM.Name)
	tb := d.c.TB
	if err := tb.StartProbeServers(ctx, a, b, c); err != nil {
		return err
	}
	results := testbed.RunPaths(ctx, tb.StandardPaths(a, b, c), 20*time.Second)
	fmt.Print(testbed.FormatMatrix(results))
	for _, r := range results {
		if !r.OK() {
			d.problem("connectivity %s from %s to %s", r.Name, r.FromName, r.ToName)
		}
	}
	if err := d.asgRows(ctx, b, a); err != nil {
		return err
	}
	if err := d.azureRows(ctx, a, b, c, f); err != nil {
		return err
	}
	return d.serviceEndpointRows(ctx, a, b)
}

// asgRows shows a pod in application security group web: Azure keeps all IP
// configurations of a NIC in the same ASGs, so the pod is in web by running on a
// node whose NIC is (nicpool copies the primary's ASGs onto every configuration it
// adds). Before the route table of azureRows, which black-holes on-premises.
func (d *demo) asgRows(ctx context.Context, in, out *testbed.Pod) error {
	tb := d.c.TB
	step("ASG web: %s's NIC in application security group web (every IP configuration, as Azure requires); NSG nsg-asg on the nodes' subnet allows on-premises to ASG web on port %d and denies on-premises otherwise; pods %s (on %s) and %s (on %s) annotated %s=web.",
		in.VM.Name, testbed.ProbePort, in.Name, in.VM.Name, out.Name, out.VM.Name, v1.AnnotationApplicationSecurityGroups)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // the operator's pass and the fabric take seconds; bounded for a loaded machine
	defer cancel()
	s, err := tb.SetUpASGRows(wctx, in, out)
	if err != nil {
		return err
	}
	fmt.Printf("The operator's answers (status.attachments of the pools, and Events on the pods): %s\n", s.Describe())
	results := testbed.RunPaths(ctx, tb.ASGPaths(s), 20*time.Second)
	fmt.Print(testbed.FormatMatrix(results))
	for _, r := range results {
		if !r.OK() {
			d.problem("connectivity %s from %s to %s", r.Name, r.FromName, r.ToName)
		}
	}
	if s.InState.State != v1.AttachmentApplied || s.OutState.Reason != "ApplicationSecurityGroupsPerNIC" {
		d.problem("ASG requests answered %s", s.Describe())
	}
	// out's refused request would hold back the attachment azureRows adds, and
	// nsg-asg would deny the Services above to whoever explores the cluster: both go.
	return tb.TearDownASGRows(wctx, s)
}

// azureRows sets up simulated Azure networking through the SDK (after the standard rows,
// which it would change) and shows what the fabric enforces: a route table with next hop
// None for on-premises on the nodes' subnet, an internal load balancer over the VMs, and
// a public IP on the last VM.
func (d *demo) azureRows(ctx context.Context, a, b, c, f *testbed.Pod) error {
	tb := d.c.TB
	last := tb.VMs[len(tb.VMs)-1]
	step("Simulated Azure networking, set up through the Azure SDK: route table rt-demo (%s -> None) on the nodes' subnet, internal load balancer lb-demo over every VM (TCP probe), public IP pip-demo on %s.",
		testbed.OnPremCIDR, last.Name)
	setup, err := tb.SetUpAzureRows(ctx, tb.VMs, last)
	if err != nil {
		return err
	}
	step("Pod attachments by annotation (docs/pod-attachments.md): internal load balancer lb-pods with %s, %s and %s in its backend pool (%s; %s fails the TCP probes), and %s with a public IP of its own (%s: create).",
		a.Name, b.Name, f.Name, v1.AnnotationLoadBalancerBackendPools, f.Name, c.Name, v1.AnnotationPublicIP)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // the operator's pass and the fabric take seconds; bounded for a loaded machine
	defer cancel()
	podSetup, err := tb.SetUpPodRows(wctx, c, []*testbed.Pod{a, b}, f)
	if err != nil {
		return err
	}
	if err := d.kubectl(ctx, "get", "nodeippools", "-o", "custom-columns=NODE:.metadata.name,ATTACHMENTS:.status.attachments[*].ip,STATE:.status.attachments[*].state"); err != nil {
		return err
	}
	results := testbed.RunPaths(ctx, append(tb.AzurePaths(setup, a), tb.PodPaths(podSetup)...), 20*time.Second)
	fmt.Print(testbed.FormatMatrix(results))
	for _, r := range results {
		if !r.OK() {
			d.problem("connectivity %s from %s to %s", r.Name, r.FromName, r.ToName)
		}
	}
	spread := tb.PodSpread(ctx, podSetup, 20)
	fmt.Print(spread)
	if !spread.OK() {
		d.problem("lb-pods spreading: %s", spread)
	}
	return nil
}

// matrixPods picks two pods on one node (a, c) and one on another (b), plus a
// fourth pod f anywhere, and wraps their network namespaces as testbed pods.
func (d *demo) matrixPods(ctx context.Context) (a, b, c, f *testbed.Pod, err error) {
	byNode := map[string][]corev1.Pod{}
	for _, p := range d.pods {
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	n0, n1 := d.c.Nodes[0], d.c.Nodes[1]
	if len(byNode[n0.Name]) < 2 || len(byNode[n1.Name]) < 1 {
		return nil, nil, nil, nil, errors.New("the Deployment did not spread over the first two nodes")
	}
	nodeOf := map[string]*cluster.Node{}
	for _, n := range d.c.Nodes {
		nodeOf[n.Name] = n
	}
	wrap := func(p corev1.Pod) (*testbed.Pod, error) {
		n := nodeOf[p.Spec.NodeName]
		netns, err := d.c.PodNetNS(ctx, &p)
		if err != nil {
			return nil, err
		}
		return &testbed.Pod{Name: shortName(p.Name), VM: n.VM, IP: p.Status.PodIP, NS: &testbed.Namespace{Name: p.Name, NetNS: netns},
			Object: &types.NamespacedName{Namespace: p.Namespace, Name: p.Name}}, nil
	}
	picked := []corev1.Pod{byNode[n0.Name][0], byNode[n1.Name][0], byNode[n0.Name][1]}
	for _, p := range d.pods {
		if len(picked) == 4 {
			break
		}
		if nodeOf[p.Spec.NodeName] != nil && !slices.ContainsFunc(picked, func(q corev1.Pod) bool { return q.Name == p.Name }) {
			picked = append(picked, p)
		}
	}
	if len(picked) < 4 {
		return nil, nil, nil, nil, errors.New("the matrix needs 4 pods of the Deployment")
	}
	var out [4]*testbed.Pod
	for i, p := range picked {
		if out[i], err = wrap(p); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	return out[0], out[1], out[2], out[3], nil
}

func (d *demo) azure(ctx context.Context) error {
	step("Azure's view (simulated ARM): the pods' IPs are secondary IP configurations of their VMs' NICs.")
	fmt.Print(d.c.TB.AzureView())
	ips := make([]string, 0, len(d.pods))
	for _, p := range d.pods {
		ips = append(ips, p.Status.PodIP)
	}
	slices.SortFunc(ips, func(x, y string) int { return netip.MustParseAddr(x).Compare(netip.MustParseAddr(y)) })
	if len(ips) > 0 {
		fmt.Printf("Pod IPs: %d from %s to %s.\n", len(ips), ips[0], ips[len(ips)-1])
	}
	return ctx.Err()
}

func (d *demo) explore() {
	fmt.Printf("\nThe cluster keeps running. Explore it, then press Ctrl-C to tear it down:\n")
	fmt.Printf("  export KUBECONFIG=%s\n", d.c.Kubeconfig())
	fmt.Printf("  kubectl get nodes,nodeippools -o wide\n")
	fmt.Printf("  kubectl get pods -A -o wide\n")
	fmt.Printf("  kubectl exec -n %s %s -- /echo get http://%s.%s.svc.cluster.local/\n", demoNamespace, d.client.Name, demoApp, demoNamespace)
	fmt.Printf("  kubectl logs -n %s daemonset/nicpool-agent\n", cluster.NicpoolNamespace)
	fmt.Printf("  (kubectl is %s)\n", filepath.Join(d.c.Env.AssetsDir, "kubectl"))
	n := d.c.Nodes[0]
	fmt.Printf("  ip netns exec %s iptables -t nat -S NICPOOL-SNAT     # node %s\n", n.VM.NS.Name, n.Name)
	fmt.Printf("  logs of nodes and control plane: %s\n", d.work)
}

func parseReport(out string) (cluster.EchoReport, error) {
	var r cluster.EchoReport
	if err := yaml.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil || r.Hostname == "" {
		return r, fmt.Errorf("unexpected answer %q: %v", out, err)
	}
	return r, nil
}

// shortName drops the ReplicaSet hash from a Deployment's pod name
// (web-6c78d8d467-2tsk5 is web-2tsk5), so that the matrix stays readable.
func shortName(pod string) string {
	parts := strings.Split(pod, "-")
	if len(parts) < 3 {
		return pod
	}
	return strings.Join(parts[:len(parts)-2], "-") + "-" + parts[len(parts)-1]
}
