package cluster

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// NicpoolNamespace is where Helm installs nicpool.
const NicpoolNamespace = "nicpool-system"

//go:embed manifests/coredns.yaml
var corednsManifest string

// InstallNicpool runs `helm install` of charts/nicpool: the operator (host
// network, ARM at the simulated endpoint, its CA trusted, no Azure
// identity) and the agent DaemonSet, from the images the nodes imported.
// Then it deploys CoreDNS as the cluster DNS.
func (c *Cluster) InstallNicpool(ctx context.Context) error {
	ca := filepath.Join(c.cfg.WorkDir, "armsim-ca.pem")
	if err := os.WriteFile(ca, c.TB.Sim.CACertPEM(), 0o600); err != nil {
		return fmt.Errorf("write armsim ca: %w", err)
	}
	opRepo, tag, _ := strings.Cut(c.images.operator, ":")
	agentRepo, _, _ := strings.Cut(c.images.agent, ":")
	args := []string{
		"install", "nicpool", filepath.Join(testenv.RepoRoot(), "charts", "nicpool"),
		"--kubeconfig", c.Kubeconfig(),
		"--namespace", NicpoolNamespace, "--create-namespace",
		"--set", "image.operatorRepository=" + opRepo,
		"--set", "image.agentRepository=" + agentRepo,
		"--set", "image.tag=" + tag,
		"--set", "image.pullPolicy=Never",
		"--set", "azure.armEndpoint=" + c.TB.Sim.URL(),
		"--set", "azure.authMode=none",
		"--set-file", "azure.armCABundle=" + ca,
		"--set", "operator.replicas=1",
		"--set", "nonMasqueradeCIDRs={" + strings.Join([]string{testbed.PeerCIDR, testbed.OnPremCIDR, controlPlaneSite.CIDR}, ",") + "}",
	}
	for _, v := range c.cfg.Values {
		args = append(args, "--set", v)
	}
	cmd := exec.CommandContext(ctx, c.cfg.Helm, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helm install nicpool: %w: %s", err, out)
	}
	return c.installCoreDNS(ctx)
}

func (c *Cluster) installCoreDNS(ctx context.Context) error {
	var b strings.Builder
	tmpl := template.Must(template.New("coredns").Parse(corednsManifest))
	if err := tmpl.Execute(&b, map[string]string{"Image": c.images.coredns, "ClusterIP": DNSServiceIP}); err != nil {
		return fmt.Errorf("render coredns manifest: %w", err)
	}
	path := filepath.Join(c.cfg.WorkDir, "coredns.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write coredns manifest: %w", err)
	}
	_, err := c.Kubectl(ctx, "apply", "-f", path)
	return err
}

// WaitDeploymentReady waits until every replica of a Deployment is ready.
func (c *Cluster) WaitDeploymentReady(ctx context.Context, namespace, name string, timeout time.Duration) error {
	_, err := c.Kubectl(ctx, "rollout", "status", "-n", namespace, "deployment/"+name, "--timeout="+timeout.String())
	return err
}
