package controllers

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/attach"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// Reasons of a refused attachment (status.attachments[].reason), besides
// ARM's own error codes.
const (
	ReasonOtherSubscription    = "OtherSubscription"
	ReasonASGsPerNIC           = "ApplicationSecurityGroupsPerNIC"
	ReasonPublicIPAskedTwice   = "PublicIPAskedTwice"
	ReasonPublicIPUnavailable  = "PublicIPCreateUnavailable"
	ReasonPublicIPCreateFailed = "PublicIPCreateFailed"
	ReasonARMRefused           = "ARMRefused"
	ReasonNotWritten           = "NotWritten"
)

// refusal is an attachment request the operator will not retry before until.
type refusal struct {
	want          attachment
	reason, msg   string
	until         time.Time
	backoff       time.Duration
	reportedEvent bool
}

// refusals remembers, per pool and IP, requests that were refused, so a
// refused request is retried every LimitRetry (doubling up to 16 times that)
// rather than on every pass. It is safe for concurrent use.
type refusals struct {
	mu sync.Mutex
	m  map[string]*refusal // by pool + "/" + ip
}

// get returns the refusal of ip on pool, if its request is still want.
func (f *refusals) get(pool, ip string, want attachment) *refusal {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.m[pool+"/"+ip]
	if r == nil || !r.want.Same(want) {
		return nil
	}
	cp := *r
	return &cp
}

// set records a refusal of want for ip on pool; the retry waits base, then
// twice as long after each further refusal of the same request. It returns
// whether the refusal is new (not the same request refused again for the
// same reason).
func (f *refusals) set(pool, ip string, want attachment, reason, msg string, base time.Duration, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]*refusal{}
	}
	k := pool + "/" + ip
	prev := f.m[k]
	backoff := base
	isNew := true
	if prev != nil && prev.want.Same(want) {
		backoff = min(2*prev.backoff, 16*base)
		isNew = prev.reason != reason
	}
	f.m[k] = &refusal{want: want, reason: reason, msg: msg, until: now.Add(backoff), backoff: backoff}
	return isNew
}

// clear forgets the refusal of ip on pool.
func (f *refusals) clear(pool, ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, pool+"/"+ip)
}

// forget drops every refusal of pool.
func (f *refusals) forget(pool string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.m {
		if strings.HasPrefix(k, pool+"/") {
			delete(f.m, k)
		}
	}
}

// attachPass is what a pass decided about spec.attachments.
type attachPass struct {
	// wants maps each IP to its resolved request.
	wants map[string]attachment
	// pods maps each IP to the pod that asked.
	pods map[string]*nicpoolv1.PodReference
	// hold are IPs whose configuration keeps what it carries this pass.
	hold map[string]bool
	// refused maps an IP to why its request is not applied.
	refused map[string][2]string
	// newlyRefused are IPs refused for a new reason in this pass (Events).
	newlyRefused []string
	// creates maps an IP to the ID of the public IP to create for it.
	creates map[string]string
	// created maps an IP to the public IP the operator created for it and
	// has not deleted yet (status.attachments[].createdPublicIPAddress).
	created map[string]string
	// nicASGs are the ASGs of the NIC's primary configuration.
	nicASGs []string
	// settled is true once the pass knows the NIC carries what status says:
	// a write succeeded, or nothing was to be written, on a Succeeded NIC.
	settled bool
}

// prepareAttachments resolves the pool's spec.attachments, merged with the
// Service backend pools its IPs belong in (svcPools, by IP), against the NIC
// (subscription rules, "create", refusals waiting for their retry).
func (r *PoolReconciler) prepareAttachments(pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, svcPools map[string][]string, now time.Time) *attachPass {
	ap := &attachPass{wants: map[string]attachment{}, pods: map[string]*nicpoolv1.PodReference{},
		hold: map[string]bool{}, refused: map[string][2]string{}, creates: map[string]string{}, created: map[string]string{}}
	for _, st := range pool.Status.Attachments {
		if st.CreatedPublicIPAddress != "" {
			ap.created[string(st.IP)] = st.CreatedPublicIPAddress
		}
	}
	nicSub := subscriptionOf(pool.Status.NICID)
	ap.nicASGs = nicsync.NICASGs(nic)
	pipOwner := map[string]string{}
	asked := map[string]bool{}
	for _, e := range pool.Spec.Attachments {
		ip := string(e.IP)
		ap.pods[ip] = e.Pod
		asked[ip] = true
		if e.Empty() && len(svcPools[ip]) == 0 {
			r.refusals.clear(pool.Name, ip)
			continue
		}
		want := attachment{ASGs: attach.Strings(e.ApplicationSecurityGroups), Pools: attach.Strings(e.LoadBalancerBackendAddressPools), PublicIP: string(e.PublicIPAddress)}
		// A pod's own backend pools and those of the Services it serves
		// ride together (docs/services.md).
		want.Pools = unionIDs(want.Pools, svcPools[ip])
		if want.PublicIP == nicpoolv1.PublicIPCreate {
			uid := ""
			if e.Pod != nil {
				uid = e.Pod.UID
			}
			want.PublicIP = createdPublicIPID(pool.Status.NICID, pool.Name, ip, uid)
			ap.creates[ip] = want.PublicIP
		}
		r.decideAttachment(pool, ap, ip, want, nicSub, pipOwner, now)
	}
	for ip, pools := range svcPools {
		if !asked[ip] && len(pools) > 0 {
			r.decideAttachment(pool, ap, ip, attachment{Pools: unionIDs(nil, pools)}, nicSub, pipOwner, now)
		}
	}
	return ap
}

// rechecked reports whether a refusal's reason is one prepareAttachments
// checks on every pass from the NIC and the pool's requests.
func rechecked(reason string) bool {
	return reason == ReasonASGsPerNIC || reason == ReasonPublicIPAskedTwice
}

// asksASGs reports whether a request of the pass names ASGs: its Applied or
// Refused depends on the NIC's ASGs, which others may change.
func (ap *attachPass) asksASGs() bool {
	for _, w := range ap.wants {
		if len(w.ASGs) > 0 {
			return true
		}
	}
	return false
}

// decideAttachment records ip's resolved request and holds it when a rule
// or a refusal waiting for its retry says so.
func (r *PoolReconciler) decideAttachment(pool *nicpoolv1.NodeIPPool, ap *attachPass, ip string, want attachment, nicSub string, pipOwner map[string]string, now time.Time) {
	ap.wants[ip] = want
	if reason, msg := checkAttachment(want, nicSub, ap.nicASGs); reason != "" {
		r.refuseAttachment(pool, ap, ip, want, reason, msg, now)
		return
	}
	if want.PublicIP != "" {
		k := strings.ToLower(want.PublicIP)
		if other, dup := pipOwner[k]; dup {
			r.refuseAttachment(pool, ap, ip, want, ReasonPublicIPAskedTwice, fmt.Sprintf(
				"public IP %s is asked for by IP %s too; a public IP serves one IP configuration", want.PublicIP, other), now)
			return
		}
		pipOwner[k] = ip
	}
	if ap.creates[ip] != "" && r.PublicIPs == nil {
		r.refuseAttachment(pool, ap, ip, want, ReasonPublicIPUnavailable, "this operator has no public IP client: it cannot create public IPs", now)
		return
	}
	if f := r.refusals.get(pool.Name, ip, want); f != nil && rechecked(f.reason) {
		// Checked afresh above and passed: the NIC's ASGs or the other
		// requests changed since, so the request waits for no retry.
		r.refusals.clear(pool.Name, ip)
	} else if f != nil {
		ap.refused[ip] = [2]string{f.reason, f.msg}
		if now.Before(f.until) {
			ap.hold[ip] = true
		}
	}
}

// unionIDs returns a followed by the IDs of b it lacks (compared as ARM
// compares IDs, case-insensitively).
func unionIDs(a, b []string) []string {
	out := slices.Clone(a)
	for _, id := range b {
		if !slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(strings.Trim(x, "/"), strings.Trim(id, "/")) }) {
			out = append(out, id)
		}
	}
	return out
}

// asgRequestsDiffer reports whether a request of pool names ASGs other than
// nic's. Its refusal must rest on the NIC as it is, not as remembered: an
// administrator may just have moved the NIC into those ASGs (ARM tells no
// one), so the pass reads it afresh.
func asgRequestsDiffer(pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface) bool {
	asgs := nicsync.NICASGs(nic)
	for _, e := range pool.Spec.Attachments {
		if len(e.ApplicationSecurityGroups) > 0 && !attach.SameIDs(attach.Strings(e.ApplicationSecurityGroups), asgs) {
			return true
		}
	}
	return false
}

// refuse holds ip's request for this pass and remembers why.
func (r *PoolReconciler) refuseAttachment(pool *nicpoolv1.NodeIPPool, ap *attachPass, ip string, want attachment, reason, msg string, now time.Time) {
	ap.hold[ip] = true
	ap.refused[ip] = [2]string{reason, msg}
	delete(ap.creates, ip)
	if r.refusals.set(pool.Name, ip, want, reason, msg, r.limitRetry(), now) {
		ap.newlyRefused = append(ap.newlyRefused, ip)
	}
}

// limitRetry is LimitRetry, or a minute when unset.
func (r *PoolReconciler) limitRetry() time.Duration {
	if r.LimitRetry <= 0 {
		return time.Minute
	}
	return r.LimitRetry
}

// checkAttachment applies the rules Azure applies that the operator can
// check without reading the referenced resources: the ASGs asked for are
// the NIC's own (Azure puts all IP configurations of a NIC in the same
// ASGs), and every referenced resource lives in the NIC's subscription. It
// returns a reason and message, or "".
func checkAttachment(a attachment, nicSub string, nicASGs []string) (string, string) {
	if len(a.ASGs) > 0 && !attach.SameIDs(a.ASGs, nicASGs) {
		return ReasonASGsPerNIC, fmt.Sprintf("Azure puts every IP configuration of a NIC in the same application security groups; "+
			"this node's NIC is in %v, the pod asks for %v: run the pod on nodes whose NIC is in those groups", nicASGs, a.ASGs)
	}
	if nicSub == "" {
		return "", ""
	}
	for _, id := range a.IDs() {
		if sub := subscriptionOf(id); !strings.EqualFold(sub, nicSub) {
			return ReasonOtherSubscription, fmt.Sprintf("%s is in subscription %s; Azure attaches only resources of the NIC's subscription %s", id, sub, nicSub)
		}
	}
	return "", ""
}

// subscriptionOf returns the subscription segment of an ARM ID, or "".
func subscriptionOf(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return ""
	}
	return segs[1]
}

// attachmentRefused reports whether ARM refused a NIC write that carried
// attachment changes for a reason other than the ones the pass handles
// anyway (etag, conflict, throttling, a full subnet or NIC, a running or
// failed operation): a 4xx such as an invalid or missing reference, a public
// IP already in use or a missing join permission (403
// LinkedAuthorizationFailed). The pass then writes again without them.
func attachmentRefused(p nicsync.Plan, err error) bool {
	if len(p.Attach) == 0 {
		return false
	}
	switch azure.Classify(err) {
	case azure.KindPreconditionFailed, azure.KindConflict, azure.KindThrottled, azure.KindSubnetFull,
		azure.KindTooManyIPConfigurations, azure.KindPending, azure.KindOperationFailed:
		return false
	}
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusRequestTimeout
}

// armCode returns ARM's error code of err ("ARMRefused" when it has none).
func armCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode != "" {
		return re.ErrorCode
	}
	return ReasonARMRefused
}

// blame returns the IPs whose attachment changes a refused write is held
// against: those whose requested resources ARM's message names, or, when it
// names none of them, every IP the write changed.
func blame(p nicsync.Plan, configs []nicsync.Config, err error) []string {
	ipOf := map[string]string{}
	for _, c := range configs {
		ipOf[c.Name] = c.IP
	}
	msg := strings.ToLower(err.Error())
	var named, all []string
	for name, a := range p.Attach {
		ip := ipOf[name]
		all = append(all, ip)
		for _, id := range a.IDs() {
			if strings.Contains(msg, strings.ToLower(strings.Trim(id, "/"))) {
				named = append(named, ip)
				break
			}
		}
	}
	if len(named) > 0 {
		return named
	}
	return all
}
