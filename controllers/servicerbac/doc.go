// Package servicerbac holds only the RBAC markers of the operator's Service
// controller (controllers/service_controller.go). They live apart so that
// `make manifests` generates them as their own ClusterRole
// (config/rbac/operator-services), granted only where Services of type
// LoadBalancer are turned on (--service-load-balancers; chart value
// serviceLoadBalancers.enabled): an operator without them never reads or
// updates Services.
package servicerbac

// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=services/finalizers,verbs=update
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
