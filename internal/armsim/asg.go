package armsim

import (
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Operations on application security groups.
const (
	OpGetASG    Op = "GetApplicationSecurityGroup"
	OpPutASG    Op = "PutApplicationSecurityGroup"
	OpDeleteASG Op = "DeleteApplicationSecurityGroup"
)

// asg is an application security group. Membership lives on the IP configurations
// that reference it; members counts them per VNet, because every member must be in
// one VNet. Guarded by Server.mu.
type asg struct {
	resBase
	members map[*vnet]int
}

func init() {
	registerKind(&resKind{
		typ: typeASG, getOp: OpGetASG, putOp: OpPutASG, delOp: OpDeleteASG,
		build: func(s *Server, b resBase, raw []byte, old netResource) (netResource, *armError) {
			var body armnetwork.ApplicationSecurityGroup
			if aerr := decodeBody(raw, &body); aerr != nil {
				return nil, aerr
			}
			a := &asg{resBase: b, members: map[*vnet]int{}}
			if old != nil {
				a.members = old.(*asg).members
			}
			return a, nil
		},
		inUse: func(s *Server, r netResource) *armError {
			a := r.(*asg)
			for _, n := range a.members {
				if n > 0 {
					return errorf(http.StatusBadRequest, CodeInUseASGCannotBeDeleted,
						"Application security group %s cannot be deleted because it is in use by IP configurations of network interfaces.", a.id)
				}
			}
			for _, x := range s.netres[strings.ToLower(typeNSG)] {
				if g := x.(*nsg); g.referencesASG(a.id) {
					return errorf(http.StatusBadRequest, CodeInUseASGCannotBeDeleted,
						"Application security group %s cannot be deleted because it is referenced by security rules of %s.", a.id, g.id)
				}
			}
			return nil
		},
		render: func(s *Server, r netResource) any {
			a := r.(*asg)
			return armnetwork.ApplicationSecurityGroup{
				ID: to.Ptr(a.id), Name: to.Ptr(a.name), Type: to.Ptr("Microsoft.Network/applicationSecurityGroups"),
				Location: to.Ptr(a.location), Etag: to.Ptr(a.etag), Tags: a.tags,
				Properties: &armnetwork.ApplicationSecurityGroupPropertiesFormat{
					ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded), ResourceGUID: to.Ptr(a.resourceGUID),
				},
			}
		},
	})
}

// asgVNet returns the VNet a's members are in, or nil when it has none.
func (a *asg) vnet() *vnet {
	for v, n := range a.members {
		if n > 0 {
			return v
		}
	}
	return nil
}
