package podattach

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/attach"
)

// wanted returns, by IP, the attachment requests of the pods holding the
// node's IPs, each IP marked in the allocator first (so an IP its pod gives
// back meanwhile waits for the detach). A pod the cache does not hold yet is
// seen on its informer's Add, which syncs again.
func (a *Attacher) wanted(ctx context.Context) map[string]nicpoolv1.IPAttachment {
	out := map[string]nicpoolv1.IPAttachment{}
	for _, rec := range a.cfg.Allocator.Records() {
		if rec.PodNamespace == "" || rec.PodName == "" {
			continue
		}
		var pod corev1.Pod
		if err := a.cfg.Cache.Get(ctx, client.ObjectKey{Namespace: rec.PodNamespace, Name: rec.PodName}, &pod); err != nil {
			continue
		}
		if rec.PodUID != "" && string(pod.UID) != rec.PodUID {
			continue // another pod of the same name; its own ADD has its own record
		}
		req, problems := attach.FromAnnotations(pod.Annotations)
		a.report(&pod, problems)
		if req.Empty() || !a.cfg.Allocator.MarkAttachment(rec.IP, rec.AttachmentKey) {
			continue
		}
		req.IP = nicpoolv1.IPv4Address(rec.IP)
		req.Pod = &nicpoolv1.PodReference{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
		out[rec.IP] = req
	}
	return out
}

// report records a Warning Event on the pod for each annotation problem not
// reported before.
func (a *Attacher) report(pod *corev1.Pod, problems []attach.Problem) {
	for _, p := range problems {
		k := string(pod.UID) + "\x00" + p.Error()
		if a.warned[k] {
			continue
		}
		a.warned[k] = true
		a.cfg.Log.Info("Ignored an invalid attachment annotation", "pod", pod.Namespace+"/"+pod.Name, "annotation", p.Annotation, "problem", p.Message)
		if a.cfg.Recorder != nil {
			a.cfg.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, "InvalidAttachmentAnnotation", "ReadAnnotations",
				"annotation %s ignored: %s", p.Annotation, p.Message)
		}
	}
}

// nextEntries returns spec.attachments as it should be: the pods' requests,
// and for every other IP with an entry an empty entry (a detach) until the
// operator reports that IP clean at the pool's current generation, then no
// entry.
func nextEntries(np *nicpoolv1.NodeIPPool, wanted map[string]nicpoolv1.IPAttachment) []nicpoolv1.IPAttachment {
	var out []nicpoolv1.IPAttachment
	for _, w := range wanted {
		out = append(out, w)
	}
	attached := map[string]bool{}
	for _, st := range np.Status.Attachments {
		attached[string(st.IP)] = true
	}
	observed := np.Status.AttachmentsObservedGeneration >= np.Generation
	for _, e := range np.Spec.Attachments {
		if _, ok := wanted[string(e.IP)]; ok {
			continue
		}
		if e.Empty() && observed && !attached[string(e.IP)] {
			continue // detached: the IP may go to another pod
		}
		out = append(out, nicpoolv1.IPAttachment{IP: e.IP, Pod: e.Pod})
	}
	slices.SortFunc(out, func(x, y nicpoolv1.IPAttachment) int {
		a, ea := netip.ParseAddr(string(x.IP))
		b, eb := netip.ParseAddr(string(y.IP))
		if ea != nil || eb != nil {
			return strings.Compare(string(x.IP), string(y.IP))
		}
		return a.Compare(b)
	})
	return out
}

// sameEntries compares two attachment lists, ignoring order.
func sameEntries(a, b []nicpoolv1.IPAttachment) bool {
	if len(a) != len(b) {
		return false
	}
	idx := map[nicpoolv1.IPv4Address]nicpoolv1.IPAttachment{}
	for _, e := range a {
		idx[e.IP] = e
	}
	for _, e := range b {
		x, ok := idx[e.IP]
		if !ok || !attach.Same(x, e) || !equality.Semantic.DeepEqual(x.Pod, e.Pod) {
			return false
		}
	}
	return true
}
