package testbed

import (
	"context"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StartEndpointSliceController runs kube-controller-manager with only its
// EndpointSlice controller against the testbed's API server, so Services'
// EndpointSlices come from Kubernetes' own controller (the testbed runs no
// kubelet: SetPodServing stands in for it by writing pod status). It is
// stopped when the testbed closes.
func (tb *Testbed) StartEndpointSliceController(ctx context.Context) (*Process, error) {
	p := &Process{Name: "kube-controller-manager", LogPath: filepath.Join(tb.cfg.WorkDir, "kube-controller-manager.log"),
		bin: filepath.Join(tb.Env.AssetsDir, "kube-controller-manager"),
		args: []string{
			"--kubeconfig=" + tb.kubeconfig,
			"--authentication-kubeconfig=" + tb.kubeconfig,
			"--authorization-kubeconfig=" + tb.kubeconfig,
			"--controllers=endpointslice",
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=0",
			"--use-service-account-credentials=false",
			"--v=1",
		}}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	tb.addCloser(func() error { p.Stop(); return nil })
	return p, nil
}

// SetPodServing does for a testbed pod what its kubelet would: labels it
// (for Service selectors) and reports it Running at its IP, Ready or not.
func (tb *Testbed) SetPodServing(ctx context.Context, p *Pod, labels map[string]string, ready bool) error {
	obj := &corev1.Pod{}
	if err := tb.Env.Client.Get(ctx, p.Key(), obj); err != nil {
		return fmt.Errorf("get pod %s: %w", p.Name, err)
	}
	base := obj.DeepCopy()
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	for k, v := range labels {
		obj.Labels[k] = v
	}
	if err := tb.Env.Client.Patch(ctx, obj, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("label pod %s: %w", p.Name, err)
	}
	base = obj.DeepCopy()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	obj.Status.Phase = corev1.PodRunning
	obj.Status.PodIP, obj.Status.PodIPs = p.IP, []corev1.PodIP{{IP: p.IP}}
	obj.Status.HostIP = p.VM.PrimaryIP
	obj.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
	}
	if err := tb.Env.Client.Status().Patch(ctx, obj, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("write status of pod %s: %w", p.Name, err)
	}
	return nil
}
