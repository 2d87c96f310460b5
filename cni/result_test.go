package cni

import (
	"net"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

func TestBuildResult(t *testing.T) {
	hostMAC, _ := net.ParseMAC("aa:aa:aa:aa:aa:01")
	podMAC, _ := net.ParseMAC("aa:aa:aa:aa:aa:02")
	host := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "np0123456789a", HardwareAddr: hostMAC}}
	args := &skel.CmdArgs{IfName: "eth0", Netns: "/var/run/netns/pod"}
	prev := &current.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*current.Interface{{Name: "other0"}},
		DNS:        types.DNS{Nameservers: []string{"10.0.0.53"}},
	}
	tests := []struct {
		name          string
		prev          types.Result
		wantPodIdx    int
		wantIfaces    int
		wantNameserve string
	}{
		{"first in chain", nil, 1, 2, "10.0.0.10"},
		{"after another plugin", prev, 2, 3, "10.0.0.53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := &NetConf{}
			conf.DNS = types.DNS{Nameservers: []string{"10.0.0.10"}}
			conf.PrevResult = tt.prev
			r, err := buildResult(conf, args, host, podLink{MAC: podMAC}, net.ParseIP("10.240.0.9"), 1400)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Interfaces) != tt.wantIfaces || *r.IPs[len(r.IPs)-1].Interface != tt.wantPodIdx {
				t.Fatalf("interfaces %v ips %v: want %d interfaces and the ip on index %d", r.Interfaces, r.IPs, tt.wantIfaces, tt.wantPodIdx)
			}
			pod := r.Interfaces[tt.wantPodIdx]
			if pod.Name != "eth0" || pod.Sandbox != args.Netns || pod.Mac != podMAC.String() || pod.Mtu != 1400 {
				t.Errorf("pod interface %+v", pod)
			}
			if r.DNS.Nameservers[0] != tt.wantNameserve {
				t.Errorf("dns %v, want %s first", r.DNS.Nameservers, tt.wantNameserve)
			}
			if r.IPs[0].Address.String() != "10.240.0.9/32" || !r.IPs[0].Gateway.Equal(gatewayIP) {
				t.Errorf("ip %v", r.IPs[0])
			}
		})
	}
}
