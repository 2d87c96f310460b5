package controllers

import (
	"reflect"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
)

// TestDeepCopyIsEqualAndIndependent proves the copy the NIC memory hands to
// a pass equals the NIC and that changing any level of it (a configuration's
// nested pointer, a slice, a map) leaves the original as it was.
func TestDeepCopyIsEqualAndIndependent(t *testing.T) {
	nic := fullNIC(3)
	want := fullNIC(3)
	got := deepCopy(nic)
	if !reflect.DeepEqual(got, nic) {
		t.Fatalf("copy differs from the original")
	}
	*got.Properties.IPConfigurations[1].Properties.PrivateIPAddress = "10.9.9.9"
	got.Properties.IPConfigurations[2].Properties.ApplicationSecurityGroups[0].ID = to.Ptr("/asg/other")
	got.Properties.IPConfigurations = append(got.Properties.IPConfigurations[:1], got.Properties.IPConfigurations[2:]...)
	*got.Tags["owner"] = "someone"
	got.Tags["new"] = to.Ptr("x")
	if !reflect.DeepEqual(nic, want) {
		t.Fatalf("changing the copy changed the original")
	}

	type withTime struct {
		At   time.Time
		Any  any
		List [2]*string
	}
	v := &withTime{At: time.Now(), Any: &[]string{"a"}, List: [2]*string{to.Ptr("b")}}
	c := deepCopy(v)
	if !c.At.Equal(v.At) || !reflect.DeepEqual(c.Any, v.Any) || *c.List[0] != "b" {
		t.Fatalf("copy %+v differs from %+v", c, v)
	}
	(*c.Any.(*[]string))[0] = "changed"
	*c.List[0] = "changed"
	if (*v.Any.(*[]string))[0] != "a" || *v.List[0] != "b" {
		t.Fatalf("changing the copy's interface or array element changed the original")
	}
	if deepCopy[withTime](nil) != nil {
		t.Fatalf("copy of nil is not nil")
	}
}
