package attach

import (
	"strings"
	"testing"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

const (
	asgWeb = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"
	asgDB  = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/db"
	pool1  = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb/backendAddressPools/be"
	pip1   = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/pip1"
)

func TestFromAnnotations(t *testing.T) {
	tests := []struct {
		name     string
		ann      map[string]string
		want     nicpoolv1.IPAttachment
		problems []string // annotations with a problem
	}{
		{name: "none", ann: map[string]string{"other": "x"}},
		{name: "all three", ann: map[string]string{
			nicpoolv1.AnnotationApplicationSecurityGroups: asgWeb + ", " + asgDB,
			nicpoolv1.AnnotationLoadBalancerBackendPools:  pool1,
			nicpoolv1.AnnotationPublicIP:                  pip1,
		}, want: nicpoolv1.IPAttachment{
			ApplicationSecurityGroups:       []nicpoolv1.ApplicationSecurityGroupID{asgWeb, asgDB},
			LoadBalancerBackendAddressPools: []nicpoolv1.BackendPoolID{pool1},
			PublicIPAddress:                 pip1,
		}},
		{name: "create, any case", ann: map[string]string{nicpoolv1.AnnotationPublicIP: " Create "}, want: nicpoolv1.IPAttachment{PublicIPAddress: "create"}},
		{name: "lower-case keywords and duplicates", ann: map[string]string{
			nicpoolv1.AnnotationApplicationSecurityGroups: strings.ToLower(asgWeb) + "," + asgWeb + ",",
		}, want: nicpoolv1.IPAttachment{ApplicationSecurityGroups: []nicpoolv1.ApplicationSecurityGroupID{nicpoolv1.ApplicationSecurityGroupID(strings.ToLower(asgWeb))}}},
		{name: "an NSG is no ASG; the good annotation still applies", ann: map[string]string{
			nicpoolv1.AnnotationApplicationSecurityGroups: asgWeb + ",/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg",
			nicpoolv1.AnnotationPublicIP:                  pip1,
		}, want: nicpoolv1.IPAttachment{PublicIPAddress: pip1}, problems: []string{nicpoolv1.AnnotationApplicationSecurityGroups}},
		{name: "a load balancer is no backend pool", ann: map[string]string{
			nicpoolv1.AnnotationLoadBalancerBackendPools: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb",
		}, problems: []string{nicpoolv1.AnnotationLoadBalancerBackendPools}},
		{name: "public IP neither create nor ID", ann: map[string]string{nicpoolv1.AnnotationPublicIP: "yes please"}, problems: []string{nicpoolv1.AnnotationPublicIP}},
		{name: "too many ASGs", ann: map[string]string{nicpoolv1.AnnotationApplicationSecurityGroups: strings.Repeat(asgWeb+"x,", 0) + manyASGs(21)}, problems: []string{nicpoolv1.AnnotationApplicationSecurityGroups}},
		{name: "empty values ask for nothing", ann: map[string]string{nicpoolv1.AnnotationPublicIP: "", nicpoolv1.AnnotationApplicationSecurityGroups: " , "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := FromAnnotations(tt.ann)
			if !Same(got, tt.want) || len(got.ApplicationSecurityGroups) != len(tt.want.ApplicationSecurityGroups) {
				t.Errorf("request = %+v, want %+v", got, tt.want)
			}
			var keys []string
			for _, p := range problems {
				keys = append(keys, p.Annotation)
				if p.Message == "" {
					t.Errorf("problem without a message: %+v", p)
				}
			}
			if strings.Join(keys, ",") != strings.Join(tt.problems, ",") {
				t.Errorf("problems in %v, want %v (%v)", keys, tt.problems, problems)
			}
		})
	}
}

func manyASGs(n int) string {
	var ids []string
	for i := range n {
		ids = append(ids, asgWeb+string(rune('a'+i)))
	}
	return strings.Join(ids, ",")
}

func TestSame(t *testing.T) {
	a := nicpoolv1.IPAttachment{ApplicationSecurityGroups: []nicpoolv1.ApplicationSecurityGroupID{asgWeb, asgDB}, PublicIPAddress: pip1}
	b := nicpoolv1.IPAttachment{ApplicationSecurityGroups: []nicpoolv1.ApplicationSecurityGroupID{asgDB, nicpoolv1.ApplicationSecurityGroupID(strings.ToUpper(asgWeb))}, PublicIPAddress: pip1}
	if !Same(a, b) {
		t.Errorf("same sets in another order and case differ")
	}
	b.PublicIPAddress = ""
	if Same(a, b) {
		t.Errorf("a dropped public IP compares the same")
	}
}
