package install_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nicpool/nicpool/nodeagent"
	"github.com/nicpool/nicpool/nodeagent/server"
)

// TestAgentProbesAndEndpoints checks, in the kustomize config and the Helm
// chart, that the agent DaemonSet has meaningful probes that reach the
// agent's health endpoint (on the host network, through 127.0.0.1), that
// metrics are bound to the node's own IP rather than every node address,
// and that no port collides with node-exporter's 9100.
func TestAgentProbesAndEndpoints(t *testing.T) {
	sources := []struct {
		name   string
		render func(t *testing.T) string
	}{
		{"kustomize", renderKustomize},
		{"helm", func(t *testing.T) string { return renderHelm(t, "nicpool", namespace) }},
		{"helm other ports", func(t *testing.T) string {
			return renderHelm(t, "nicpool", namespace, "--set", "agent.metricsPort=9645", "--set", "agent.healthPort=9646")
		}},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			var ds appsv1.DaemonSet
			parse(t, src.render(t)).one(t, "DaemonSet", &ds)
			c := ds.Spec.Template.Spec.Containers[0]
			o := nodeagent.DefaultOptions()
			fs := pflag.NewFlagSet("nicpool-agent", pflag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(c.Args); err != nil {
				t.Fatalf("parse agent args: %v", err)
			}
			if fs.Changed("introspection-addr") {
				t.Errorf("agent args still pass the ignored --introspection-addr")
			}
			healthHost, healthPort, err := net.SplitHostPort(o.HealthAddr)
			if err != nil || healthHost != "127.0.0.1" {
				t.Fatalf("--health-addr %q is not on 127.0.0.1 (%v)", o.HealthAddr, err)
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, server.PathLive}, {"readiness", c.ReadinessProbe, server.PathReady}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("agent has no %s httpGet probe", p.name)
					continue
				}
				g := p.probe.HTTPGet
				// hostNetwork: the kubelet would probe the node IP by default,
				// where the health endpoint does not listen.
				if g.Host != "127.0.0.1" || g.Path != p.path || g.Port.String() != healthPort {
					t.Errorf("%s probe %s:%s%s, want 127.0.0.1:%s%s", p.name, g.Host, g.Port.String(), g.Path, healthPort, p.path)
				}
			}
			metricsHost, metricsPort, err := net.SplitHostPort(o.MetricsAddr)
			if err != nil || metricsHost != "$(NODE_IP)" {
				t.Errorf("--metrics-addr %q is not bound to $(NODE_IP) (%v)", o.MetricsAddr, err)
			}
			hasNodeIP := false
			for _, e := range c.Env {
				if e.Name == "NODE_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP" {
					hasNodeIP = true
				}
			}
			if !hasNodeIP {
				t.Errorf("agent does not get NODE_IP from status.hostIP")
			}
			for _, p := range c.Ports {
				if p.Name == "metrics" && strconv.Itoa(int(p.ContainerPort)) != metricsPort {
					t.Errorf("metrics containerPort %d differs from --metrics-addr %s", p.ContainerPort, o.MetricsAddr)
				}
			}
			for _, port := range []string{metricsPort, healthPort} {
				if port == "9100" {
					t.Errorf("agent port %s collides with node-exporter", port)
				}
			}
			if metricsPort == healthPort {
				t.Errorf("metrics and health share port %s", metricsPort)
			}
			if src.name == "helm other ports" && (metricsPort != "9645" || healthPort != "9646") {
				t.Errorf("ports %s/%s do not follow the chart's values", metricsPort, healthPort)
			}
			if !strings.Contains(strings.Join(c.Args, " "), "--metrics-addr=") {
				t.Errorf("agent args do not set --metrics-addr")
			}
		})
	}
}
