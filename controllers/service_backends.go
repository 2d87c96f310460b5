package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// readyEndpointIPIndex indexes EndpointSlices by the addresses of their
// ready endpoints.
const readyEndpointIPIndex = "nicpool.readyEndpointIP"

// readyEndpointIPs lists the IPv4 addresses of a slice's ready endpoints (a
// missing ready condition means ready, as the API says).
func readyEndpointIPs(o client.Object) []string {
	s, ok := o.(*discoveryv1.EndpointSlice)
	if !ok || s.AddressType != discoveryv1.AddressTypeIPv4 {
		return nil
	}
	var out []string
	for _, e := range s.Endpoints {
		if e.Conditions.Ready != nil && !*e.Conditions.Ready {
			continue
		}
		out = append(out, e.Addresses...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// serviceBackends answers, for a pool pass, which Service backend pools the
// pool's IPs belong in. It reads the manager's cache only.
type serviceBackends struct {
	reader client.Reader
	names  *serviceLBs
}

// poolsFor maps each of ips to the backend pools of the nicpool Services
// that list it as a ready endpoint (and whose pool exists).
func (b *serviceBackends) poolsFor(ctx context.Context, ips []string) (map[string][]string, error) {
	out := map[string][]string{}
	services := map[client.ObjectKey]string{}
	for _, ip := range ips {
		var list discoveryv1.EndpointSliceList
		if err := b.reader.List(ctx, &list, client.MatchingFields{readyEndpointIPIndex: ip}); err != nil {
			return nil, fmt.Errorf("list endpointslices with ready endpoint %s: %w", ip, err)
		}
		for _, s := range list.Items {
			name := s.Labels[discoveryv1.LabelServiceName]
			if name == "" {
				continue
			}
			k := client.ObjectKey{Namespace: s.Namespace, Name: name}
			pool, seen := services[k]
			if !seen {
				var svc corev1.Service
				err := b.reader.Get(ctx, k, &svc)
				switch {
				case apierrors.IsNotFound(err):
				case err != nil:
					return nil, fmt.Errorf("get service %s: %w", k, err)
				default:
					pool = b.names.activePool(&svc)
				}
				services[k] = pool
			}
			if pool != "" && !slices.Contains(out[ip], pool) {
				out[ip] = append(out[ip], pool)
			}
		}
	}
	return out, nil
}

// slicePools maps an EndpointSlice event to the pools (named as the nodes)
// of its endpoints; the handler is called with both the old and the new
// slice of an update, so endpoints that left are covered.
// Only slices of Services nicpool serves (or served: the Service carries the
// backend pool annotation) wake pools.
func slicePools(reader client.Reader) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		s, ok := o.(*discoveryv1.EndpointSlice)
		name := o.GetLabels()[discoveryv1.LabelServiceName]
		if !ok || name == "" {
			return nil
		}
		var svc corev1.Service
		if err := reader.Get(ctx, client.ObjectKey{Namespace: o.GetNamespace(), Name: name}, &svc); err != nil || !concernsNicpool(&svc) {
			return nil
		}
		return nodesOf(s)
	})
}

// concernsNicpool reports whether svc is, or was, served by nicpool.
func concernsNicpool(svc *corev1.Service) bool {
	return servedByNicpool(svc) || svc.Annotations[AnnotationServiceBackendPool] != ""
}

func nodesOf(slices ...*discoveryv1.EndpointSlice) []reconcile.Request {
	seen := map[string]bool{}
	var out []reconcile.Request
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.NodeName != nil && *e.NodeName != "" && !seen[*e.NodeName] {
				seen[*e.NodeName] = true
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: *e.NodeName}})
			}
		}
	}
	return out
}

// servicePools maps a Service event to the pools of its endpoints (the
// backend pool appearing, a deletion, a switch between internal and public).
func servicePools(reader client.Reader) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		if svc, ok := o.(*corev1.Service); !ok || !concernsNicpool(svc) {
			return nil
		}
		var list discoveryv1.EndpointSliceList
		if err := reader.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingLabels{discoveryv1.LabelServiceName: o.GetName()}); err != nil {
			return nil
		}
		var ss []*discoveryv1.EndpointSlice
		for i := range list.Items {
			ss = append(ss, &list.Items[i])
		}
		return nodesOf(ss...)
	})
}

// sliceToService maps an EndpointSlice to its Service (the Service
// controller resolves named target ports from slices).
func sliceToService() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name := o.GetLabels()[discoveryv1.LabelServiceName]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
	})
}

// serviceWants returns, by IP of the pool's status.ips, the Service backend
// pools it belongs in; nil when Services are not served.
func (r *PoolReconciler) serviceWants(ctx context.Context, pool *nicpoolv1.NodeIPPool) (map[string][]string, error) {
	if r.Services == nil || len(pool.Status.IPs) == 0 {
		return nil, nil
	}
	ips := make([]string, 0, len(pool.Status.IPs))
	for _, p := range pool.Status.IPs {
		ips = append(ips, string(p.IP))
	}
	return r.Services.poolsFor(ctx, ips)
}
