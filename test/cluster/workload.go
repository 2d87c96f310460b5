package cluster

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// EchoPorts of the test workload (test/workloads/echo).
const (
	EchoHTTPPort = 8080
	EchoTCPPort  = 9000
)

// EchoDeployment is a Deployment of the echo workload: pods labelled
// app=name, spread evenly over the nodes, or all on node when it is set.
func (c *Cluster) EchoDeployment(namespace, name string, replicas int32, node string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	grace := int64(1)
	spec := corev1.PodSpec{
		TerminationGracePeriodSeconds: &grace,
		Containers: []corev1.Container{{
			Name:            "echo",
			Image:           c.images.echo,
			ImagePullPolicy: corev1.PullNever,
			Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: EchoHTTPPort},
				{Name: "tcp", ContainerPort: EchoTCPPort},
			},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(EchoHTTPPort)}},
				PeriodSeconds: 10,
			},
		}},
	}
	if node != "" {
		spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
	} else {
		spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
		}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
}

// CreateNamespace creates a namespace (it may exist already).
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	_, err := c.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// WaitReplicasReady waits until the Deployment has replicas ready pods of
// its latest revision.
func (c *Cluster) WaitReplicasReady(ctx context.Context, namespace, name string, timeout time.Duration) error {
	return waitFor(ctx, timeout, fmt.Sprintf("deployment %s/%s to be ready", namespace, name), func() error {
		d, err := c.Clientset.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.ReadyReplicas != want || s.Replicas != want {
			return fmt.Errorf("%d of %d ready, %d updated, %d in total", s.ReadyReplicas, want, s.UpdatedReplicas, s.Replicas)
		}
		return nil
	})
}

// Pods lists the pods of a namespace with the label app=app that are not
// being deleted.
func (c *Cluster) Pods(ctx context.Context, namespace, app string) ([]corev1.Pod, error) {
	list, err := c.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, fmt.Errorf("list pods %s/app=%s: %w", namespace, app, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// PodIPsOnNodes counts the pods in the cluster that hold a pod IP (not host
// network, not finished) on each node.
func (c *Cluster) PodIPsOnNodes(ctx context.Context) (map[string]int, error) {
	list, err := c.Clientset.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := map[string]int{}
	for _, p := range list.Items {
		if p.Spec.HostNetwork || p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		out[p.Spec.NodeName]++
	}
	return out, nil
}
