package render

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The probes of the app's containers that go through the proxy's agent, as Istio rewrites them
// (rewriteAppHTTPProbe): every readiness, liveness and startup probe with an httpGet, tcpSocket or
// grpc handler, of every container and init container but the proxy, becomes an HTTP GET of
// /app-health/<container>/<readyz|livez|startupz> on the agent's status port, and the agent, told
// the original handlers in ISTIO_KUBE_APP_PROBERS, probes the app on the kubelet's behalf. The
// kubelet's own probes would otherwise be refused by the mesh (mTLS) or captured by the redirect.

// probeKinds are the probes rewritten, with the agent's name for each.
var probeKinds = []struct {
	field, suffix string
	get           func(*corev1.Container) *corev1.Probe
}{
	{"readinessProbe", "readyz", func(c *corev1.Container) *corev1.Probe { return c.ReadinessProbe }},
	{"livenessProbe", "livez", func(c *corev1.Container) *corev1.Probe { return c.LivenessProbe }},
	{"startupProbe", "startupz", func(c *corev1.Container) *corev1.Probe { return c.StartupProbe }},
}

// appProber is one entry of ISTIO_KUBE_APP_PROBERS: the original handler, its port a number.
type appProber struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// appProbe is one probe to rewrite: where it is, what the agent must do, and what the kubelet
// gets instead.
type appProbe struct {
	list, container, field, path string
	prober                       appProber
	rewritten                    *corev1.Probe
}

// appProbes lists the probes of pod that go through the agent on port, in pod order (init
// containers first), skipping the container named proxy. A probe whose port is a name its
// container does not declare is left alone: the kubelet cannot resolve it either, and the agent
// would have no port to call.
func appProbes(pod *corev1.Pod, port int, proxy string) []appProbe {
	if pod == nil || port <= 0 || port > 65535 {
		return nil
	}
	var out []appProbe
	for _, list := range []struct {
		name       string
		containers []corev1.Container
	}{{"initContainers", pod.Spec.InitContainers}, {"containers", pod.Spec.Containers}} {
		for i := range list.containers {
			c := &list.containers[i]
			if c.Name == proxy {
				continue
			}
			for _, kind := range probeKinds {
				p := kind.get(c)
				if p == nil {
					continue
				}
				prober, ok := proberOf(p, c)
				if !ok {
					continue
				}
				path := fmt.Sprintf("/app-health/%s/%s", c.Name, kind.suffix)
				out = append(out, appProbe{list: list.name, container: c.Name, field: kind.field, path: path, prober: prober, rewritten: rewrite(p, path, port)})
			}
		}
	}
	return out
}

// proberOf is the agent's copy of p's handler, with a named port resolved against c's ports.
func proberOf(p *corev1.Probe, c *corev1.Container) (appProber, bool) {
	pr := appProber{TimeoutSeconds: p.TimeoutSeconds}
	switch {
	case p.HTTPGet != nil:
		port, ok := portNumber(p.HTTPGet.Port, c)
		if !ok {
			return pr, false
		}
		get := *p.HTTPGet
		get.Port = intstr.FromInt32(port)
		pr.HTTPGet = &get
	case p.TCPSocket != nil:
		port, ok := portNumber(p.TCPSocket.Port, c)
		if !ok {
			return pr, false
		}
		tcp := *p.TCPSocket
		tcp.Port = intstr.FromInt32(port)
		pr.TCPSocket = &tcp
	case p.GRPC != nil:
		grpc := *p.GRPC
		pr.GRPC = &grpc
	default: // exec, or no handler: the kubelet runs it itself
		return pr, false
	}
	return pr, true
}

// portNumber resolves a probe's port: a number, a container port's name, or a number written as a
// string.
func portNumber(port intstr.IntOrString, c *corev1.Container) (int32, bool) {
	if port.Type == intstr.Int {
		return port.IntVal, port.IntVal > 0 && port.IntVal <= 65535
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, true
		}
	}
	n, err := strconv.ParseUint(port.StrVal, 10, 16)
	return int32(n), err == nil && n > 0
}

// rewrite is p asking the agent instead: an HTTP GET of path on port, keeping p's timings and, of
// an HTTP probe, its host and headers (HTTPS becomes HTTP: the agent speaks plain HTTP).
func rewrite(p *corev1.Probe, path string, port int) *corev1.Probe {
	out := p.DeepCopy()
	get := &corev1.HTTPGetAction{}
	if p.HTTPGet != nil {
		get = out.HTTPGet
		if get.Scheme == corev1.URISchemeHTTPS {
			get.Scheme = corev1.URISchemeHTTP
		}
	}
	get.Path = path
	get.Port = intstr.FromInt(port)
	out.ProbeHandler = corev1.ProbeHandler{HTTPGet: get}
	return out
}

// appProbers is the value of ISTIO_KUBE_APP_PROBERS for pod: a JSON object from each rewritten
// probe's path to its original handler, keys sorted; "" when no probe is rewritten.
func appProbers(pod *corev1.Pod, port any, proxy string) (string, error) {
	n, err := portArg("appProbers", port)
	if err != nil {
		return "", err
	}
	probes := appProbes(pod, n, proxy)
	if len(probes) == 0 {
		return "", nil
	}
	m := make(map[string]appProber, len(probes))
	for _, p := range probes {
		m[p.path] = p.prober
	}
	b, err := json.Marshal(m) // map keys are sorted
	if err != nil {
		return "", fmt.Errorf("appProbers: %w", err)
	}
	return string(b), nil
}

// probeRewrites is the rewrite section of a partial pod for pod: by list, the containers whose
// probes go through the agent on port, each with its name and rewritten probes.
func probeRewrites(pod *corev1.Pod, port any, proxy string) (map[string]any, error) {
	n, err := portArg("probeRewrites", port)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	index := map[string]map[string]any{}
	for _, p := range appProbes(pod, n, proxy) {
		key := p.list + "/" + p.container
		c, ok := index[key]
		if !ok {
			c = map[string]any{"name": p.container}
			index[key] = c
			list, _ := out[p.list].([]any)
			out[p.list] = append(list, c)
		}
		c[p.field] = p.rewritten
	}
	return out, nil
}

// portArg reads a port given to a template function: a number as values hold it, or a string.
func portArg(fn string, v any) (int, error) {
	var s string
	switch v := v.(type) {
	case int:
		return v, nil
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return 0, fmt.Errorf("%s: port %v is not a number", fn, v)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%s: port %q is not a port number", fn, s)
	}
	return int(n), nil
}
