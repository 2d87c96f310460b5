package install_test

import (
	"context"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

const nodeNameExtra = "authentication.kubernetes.io/node-name"

// TestAgentPolicyConfinesAgentToItsNode plays a node agent: a token for the
// agent ServiceAccount bound to a Pod on node "policy-a", used as a bearer
// token. It may change its own pool's requestedIPCount and ipsNotInUse and
// nothing else: not another node's pool, not its own pool's nicID, labels or
// status, and it may not delete a pool. A token bound to no pod, which
// carries no node name, may change nothing.
func TestAgentPolicyConfinesAgentToItsNode(t *testing.T) {
	installDefault(t)
	ctx := context.Background()
	own, other := "policy-a", "policy-b"
	for _, n := range []string{own, other} {
		createNode(t, n)
	}
	// The own pool starts without a spec, as one written by kubectl may.
	createPool(t, own, false)
	createPool(t, other, true)
	pod := createAgentPod(t, own)

	agent := agentClient(t, requestToken(ctx, t, &authenticationv1.BoundObjectReference{
		Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID,
	}))
	checkNodeNameExtra(t, agent, own)

	tests := []struct {
		name    string
		pool    string
		mutate  func(p *nicpoolv1.NodeIPPool)
		status  bool
		wantErr string // empty: admitted
	}{
		{name: "own pool requestedIPCount", pool: own, mutate: func(p *nicpoolv1.NodeIPPool) { p.Spec.RequestedIPCount = 12 }},
		{name: "own pool ipsNotInUse", pool: own, mutate: func(p *nicpoolv1.NodeIPPool) {
			p.Spec.IPsNotInUse = []nicpoolv1.IPv4Address{"10.240.0.9"}
		}},
		{name: "other node's pool", pool: other, mutate: func(p *nicpoolv1.NodeIPPool) { p.Spec.RequestedIPCount = 12 },
			wantErr: "only the pool of its own node"},
		{name: "own pool nicID", pool: own, mutate: func(p *nicpoolv1.NodeIPPool) {
			p.Spec.NICID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/evil"
		}, wantErr: "may not change spec.nicID"},
		{name: "own pool labels", pool: own, mutate: func(p *nicpoolv1.NodeIPPool) { p.Labels = map[string]string{"x": "y"} },
			wantErr: "may not change labels"},
		{name: "own pool finalizers", pool: own, mutate: func(p *nicpoolv1.NodeIPPool) { p.Finalizers = nil },
			wantErr: "may not change labels, annotations, finalizers"},
		{name: "own pool status", pool: own, status: true, mutate: func(p *nicpoolv1.NodeIPPool) { p.Status.AllocatedIPCount = 3 },
			wantErr: "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p nicpoolv1.NodeIPPool
			if err := agent.Get(ctx, client.ObjectKey{Name: tt.pool}, &p); err != nil {
				t.Fatalf("agent get pool %s: %v", tt.pool, err)
			}
			tt.mutate(&p)
			var err error
			if tt.status {
				err = agent.Status().Update(ctx, &p)
			} else {
				err = agent.Update(ctx, &p)
			}
			checkAdmission(t, err, tt.wantErr)
		})
	}

	t.Run("delete own pool", func(t *testing.T) {
		err := agent.Delete(ctx, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: own}})
		checkAdmission(t, err, "forbidden")
	})
	t.Run("token bound to no pod", func(t *testing.T) {
		unbound := agentClient(t, requestToken(ctx, t, nil))
		var p nicpoolv1.NodeIPPool
		if err := unbound.Get(ctx, client.ObjectKey{Name: own}, &p); err != nil {
			t.Fatalf("get own pool: %v", err)
		}
		p.Spec.RequestedIPCount = 20
		checkAdmission(t, unbound.Update(ctx, &p), "not bound to a node")
	})
}

// checkAdmission checks that err is nil when wantErr is empty, and otherwise
// a Forbidden error whose message contains wantErr.
func checkAdmission(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("rejected, want admitted: %v", err)
	case wantErr == "":
		return
	case err == nil:
		t.Fatalf("admitted, want rejected with %q", wantErr)
	case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
		t.Fatalf("error %v is not Forbidden", err)
	case !strings.Contains(err.Error(), wantErr):
		t.Fatalf("error %q does not say %q", err, wantErr)
	}
}

func createNode(t *testing.T, name string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
}

// createPool creates a pool as the operator would, with a finalizer, and
// with a spec or without any.
func createPool(t *testing.T, name string, withSpec bool) {
	t.Helper()
	p := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": nicpoolv1.GroupVersion.String(),
		"kind":       "NodeIPPool",
		"metadata":   map[string]any{"name": name, "finalizers": []any{nicpoolv1.FinalizerName}},
	}}
	if withSpec {
		p.Object["spec"] = map[string]any{"requestedIPCount": int64(4)}
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("create pool %s: %v", name, err)
	}
}

// createAgentPod creates an agent pod already scheduled to node, as the
// DaemonSet controller would (no scheduler or kubelet runs here), with the
// DaemonSet's priority class, which admission must allow outside kube-system.
func createAgentPod(t *testing.T, node string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nicpool-agent-" + node, Namespace: namespace},
		Spec: corev1.PodSpec{
			ServiceAccountName:           "nicpool-agent",
			PriorityClassName:            "system-node-critical",
			AutomountServiceAccountToken: ptr.To(false),
			NodeName:                     node,
			Containers:                   []corev1.Container{{Name: "agent", Image: "ghcr.io/nicpool/nicpool-agent:test"}},
		},
	}
	if err := env.Client.Create(context.Background(), pod); err != nil {
		t.Fatalf("create agent pod on %s: %v", node, err)
	}
	return pod
}

// requestToken asks the API server for an agent ServiceAccount token, bound
// to ref when it is not nil.
func requestToken(ctx context.Context, t *testing.T, ref *authenticationv1.BoundObjectReference) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatalf("build clientset: %v", err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](600),
		BoundObjectRef:    ref,
	}}
	got, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "nicpool-agent", tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request agent token: %v", err)
	}
	return got.Status.Token
}

// agentClient is a client that authenticates with token only.
func agentClient(t *testing.T, token string) client.Client {
	t.Helper()
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = token
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatalf("build agent client: %v", err)
	}
	return c
}

// checkNodeNameExtra checks that the API server sees the agent as the agent
// ServiceAccount on node: the premise of the policy.
func checkNodeNameExtra(t *testing.T, c client.Client, node string) {
	t.Helper()
	ssr := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(context.Background(), ssr); err != nil {
		t.Fatalf("self subject review with the agent token: %v", err)
	}
	u := ssr.Status.UserInfo
	if u.Username != agentUser {
		t.Fatalf("agent token authenticates as %q, want %q", u.Username, agentUser)
	}
	if got := u.Extra[nodeNameExtra]; len(got) != 1 || got[0] != node {
		t.Fatalf("agent token's %s = %v, want [%s] (is ServiceAccountTokenPodNodeInfo enabled?)", nodeNameExtra, got, node)
	}
}
