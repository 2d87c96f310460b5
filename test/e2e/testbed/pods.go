package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// PodNamespace is the Kubernetes namespace of the testbed's pods.
const PodNamespace = "default"

// Pod is a network namespace wired by the nicpool CNI plugin, as a container
// runtime does it, with a matching Pod object bound to its VM's node.
type Pod struct {
	Name        string
	ContainerID string
	VM          *VM
	NS          *Namespace
	IP          string
	Result      *types100.Result
	// Object is the Pod object's key when it is not {PodNamespace, Name} (pods
	// a kubelet created).
	Object *types.NamespacedName
}

// Key is the key of the pod's Pod object.
func (p *Pod) Key() types.NamespacedName {
	if p.Object != nil {
		return *p.Object
	}
	return types.NamespacedName{Namespace: PodNamespace, Name: p.Name}
}

// StartPod creates the Pod object and the pod's namespace and calls the CNI
// ADD of the conflist the VM's agent installed, from inside the VM namespace.
// On error the sandbox is deleted (CNI DEL, namespace) as a runtime does; the
// Pod object stays, as it would while kubelet retries.
func (tb *Testbed) StartPod(ctx context.Context, vm *VM, name string) (*Pod, error) {
	return tb.startPod(ctx, vm, name, nil)
}

// startPod is StartPod; exec, when not nil, runs the plugins (nil: libcni's
// own).
func (tb *Testbed) startPod(ctx context.Context, vm *VM, name string, exec func(containerID string) invoke.Exec) (*Pod, error) {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	p := &Pod{Name: name, ContainerID: hex.EncodeToString(id), VM: vm}
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: PodNamespace},
		Spec:       corev1.PodSpec{NodeName: vm.Name, Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if err := tb.Env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create pod %s: %w", name, err)
	}
	var err error
	if p.NS, err = tb.newNamespace("p-" + p.ContainerID[:8]); err != nil {
		return nil, err
	}
	var ex invoke.Exec
	if exec != nil {
		ex = exec(p.ContainerID)
	}
	res, err := tb.cniAdd(ctx, p, ex)
	if err != nil {
		// A container runtime follows a failed ADD with a DEL of the same
		// sandbox before it gives up on it.
		if derr := tb.cniDel(ctx, p); derr != nil {
			err = errors.Join(err, derr)
		}
		_ = tb.removeNamespace(p.NS)
		return nil, err
	}
	p.Result = res
	if len(res.IPs) == 0 {
		return p, errors.New("CNI ADD returned no IP")
	}
	p.IP = res.IPs[0].Address.IP.String()
	return p, nil
}

// DeletePod calls CNI DEL, deletes the namespace and the Pod object.
func (tb *Testbed) DeletePod(ctx context.Context, p *Pod) error {
	errs := []error{tb.cniDel(ctx, p), tb.removeNamespace(p.NS)}
	obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: PodNamespace}}
	if err := tb.Env.Client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete pod object %s: %w", p.Name, err))
	}
	return errors.Join(errs...)
}

func (tb *Testbed) cni(vm *VM) (*libcni.CNIConfig, *libcni.NetworkConfigList, error) {
	return tb.cniWith(vm, nil)
}

func (tb *Testbed) cniWith(vm *VM, exec invoke.Exec) (*libcni.CNIConfig, *libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(vm.CNIConfDir, []string{".conflist"})
	if err != nil {
		return nil, nil, fmt.Errorf("list conflists in %s: %w", vm.CNIConfDir, err)
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("no conflist in %s (is the agent ready?)", vm.CNIConfDir)
	}
	list, err := libcni.ConfListFromFile(files[0])
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", files[0], err)
	}
	cacheDir := filepath.Join(vm.Dir, "cni-cache")
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create CNI cache directory %s: %w", cacheDir, err)
	}
	return libcni.NewCNIConfigWithCacheDir([]string{vm.CNIBinDir, "/usr/lib/cni"}, cacheDir, exec), list, nil
}

func (p *Pod) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.ContainerID,
		NetNS:       p.NS.Path(),
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", PodNamespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID},
		},
	}
}

func (tb *Testbed) cniAdd(ctx context.Context, p *Pod, exec invoke.Exec) (*types100.Result, error) {
	c, list, err := tb.cniWith(p.VM, exec)
	if err != nil {
		return nil, err
	}
	var res *types100.Result
	err = p.VM.NS.Do(func(ns.NetNS) error {
		r, err := c.AddNetworkList(ctx, list, p.runtimeConf())
		if err != nil {
			return fmt.Errorf("run the plugins: %w", err)
		}
		if res, err = types100.NewResultFromResult(r); err != nil {
			return fmt.Errorf("convert the result: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("CNI ADD %s on %s: %w", p.Name, p.VM.Name, err)
	}
	return res, nil
}

func (tb *Testbed) cniDel(ctx context.Context, p *Pod) error {
	c, list, err := tb.cni(p.VM)
	if err != nil {
		return err
	}
	err = p.VM.NS.Do(func(ns.NetNS) error { return c.DelNetworkList(ctx, list, p.runtimeConf()) })
	if err != nil {
		return fmt.Errorf("CNI DEL %s on %s: %w", p.Name, p.VM.Name, err)
	}
	return nil
}

func (tb *Testbed) removeNamespace(n *Namespace) error {
	tb.mu.Lock()
	for i, x := range tb.namespaces {
		if x == n {
			tb.namespaces = append(tb.namespaces[:i], tb.namespaces[i+1:]...)
			break
		}
	}
	tb.mu.Unlock()
	return n.delete()
}

// NewPodNamespace creates an empty pod namespace the testbed deletes on Close.
func (tb *Testbed) NewPodNamespace(name string) (*Namespace, error) {
	return tb.newNamespace("p-" + name)
}

// StartPods starts n pods, at most parallel at a time, like a burst of pod
// creations; place(i) names pod i and the VM it runs on. Every pod is tried;
// the errors of those that failed are joined.
func (tb *Testbed) StartPods(ctx context.Context, n, parallel int, place func(i int) (*VM, string)) ([]*Pod, error) {
	pods := make([]*Pod, n)
	errs := make([]error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		vm, name := place(i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if pods[i], errs[i] = tb.StartPod(ctx, vm, name); errs[i] != nil {
				errs[i] = fmt.Errorf("pod %d: %w", i, errs[i])
			}
		}()
	}
	wg.Wait()
	return pods, errors.Join(errs...)
}
