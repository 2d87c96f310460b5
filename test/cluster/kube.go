package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubectl runs kubectl as cluster admin and returns its combined output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	if c.Kubeconfig() == "" {
		return "", fmt.Errorf("kubectl %s: the cluster's API server has not started", strings.Join(args, " "))
	}
	argv := append([]string{"--kubeconfig", c.Kubeconfig()}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(c.cfg.K8sBinDir, "kubectl"), argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (c *Cluster) waitNodesRegistered(ctx context.Context, timeout time.Duration) error {
	return waitFor(ctx, timeout, "every kubelet to register its node", func() error {
		list, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) != len(c.Nodes) {
			return fmt.Errorf("%d of %d nodes registered", len(list.Items), len(c.Nodes))
		}
		return nil
	})
}

// NodeReady returns the node's Ready condition (nil before the first status).
func (c *Cluster) NodeReady(ctx context.Context, name string) (*corev1.NodeCondition, error) {
	node, err := c.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			return &node.Status.Conditions[i], nil
		}
	}
	return nil, nil
}

// WaitNodesReady waits until every node is Ready.
func (c *Cluster) WaitNodesReady(ctx context.Context, timeout time.Duration) error {
	return waitFor(ctx, timeout, "every node to be Ready", func() error {
		for _, n := range c.Nodes {
			cond, err := c.NodeReady(ctx, n.Name)
			if err != nil {
				return err
			}
			if cond == nil || cond.Status != corev1.ConditionTrue {
				msg := "no status yet"
				if cond != nil {
					msg = cond.Reason + ": " + cond.Message
				}
				return fmt.Errorf("node %s not ready (%s)", n.Name, msg)
			}
		}
		return nil
	})
}
