package deploy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgehost/edgehost/host/config"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// root is the repository, one level up.
var root = func() string { d, _ := filepath.Abs(".."); return d }()

// docs splits a multi-document YAML file.
func docs(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

// strict decodes one document into v, rejecting unknown and duplicate fields, and checks
// its apiVersion and kind.
func strict(t *testing.T, doc []byte, apiVersion, kind string, v any) {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatal(err)
	}
	if tm.APIVersion != apiVersion || tm.Kind != kind {
		t.Fatalf("document is %s %s, want %s %s", tm.APIVersion, tm.Kind, apiVersion, kind)
	}
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

// kubernetesManifests decodes deploy/kubernetes/edgehost.yaml.
func kubernetesManifests(t *testing.T) (*corev1.ConfigMap, *appsv1.DaemonSet) {
	t.Helper()
	ds := docs(t, "kubernetes/edgehost.yaml")
	if len(ds) != 3 {
		t.Fatalf("%d documents, want Namespace, ConfigMap, DaemonSet", len(ds))
	}
	var ns corev1.Namespace
	var cm corev1.ConfigMap
	var d appsv1.DaemonSet
	strict(t, ds[0], "v1", "Namespace", &ns)
	strict(t, ds[1], "v1", "ConfigMap", &cm)
	strict(t, ds[2], "apps/v1", "DaemonSet", &d)
	if cm.Namespace != ns.Name || d.Namespace != ns.Name {
		t.Fatalf("namespaces: ConfigMap %q, DaemonSet %q, want %q", cm.Namespace, d.Namespace, ns.Name)
	}
	return &cm, &d
}

// TestStrictDecodingRejectsUnknownFields: the decoding the other tests rely on does reject
// a misspelt field.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	d := docs(t, "kubernetes/edgehost.yaml")[2]
	bad := bytes.Replace(d, []byte("      terminationGracePeriodSeconds:"), []byte("      terminationGracePeriod:"), 1)
	if bytes.Equal(bad, d) {
		t.Fatal("the DaemonSet has no terminationGracePeriodSeconds to misspell")
	}
	var ds appsv1.DaemonSet
	err := yaml.UnmarshalStrict(bad, &ds)
	if err == nil || !strings.Contains(err.Error(), `unknown field "terminationGracePeriod"`) {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
}

// pluginFiles is the edgehost-plugins ConfigMap, as the README's kubectl command makes it:
// key = the file's base name.
var pluginFiles = []string{
	"plugins/examples/imagepre-c/imagepre-c.wasm",
	"plugins/examples/classify-c/classify-c.wasm",
	".deps/models/mobilenet_labels.txt",
}

// pluginConfigMap builds edgehost-plugins from the built files the way
// `kubectl create configmap --from-file` does (binaryData for files that are not UTF-8).
func pluginConfigMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{Data: map[string]string{}, BinaryData: map[string][]byte{}}
	for _, f := range pluginFiles {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatalf("%v (run `make plugins` and `make deps` first)", err)
		}
		if utf8.Valid(b) {
			cm.Data[filepath.Base(f)] = string(b)
		} else {
			cm.BinaryData[filepath.Base(f)] = b
		}
	}
	return cm
}

// volumeFor returns the pod volume that holds path in container c, and path relative to
// its mount.
func volumeFor(t *testing.T, pod *corev1.PodSpec, c *corev1.Container, path string) (*corev1.Volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if rel, ok := strings.CutPrefix(path, m.MountPath+"/"); ok {
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == m.Name {
					return &pod.Volumes[i], rel
				}
			}
			t.Fatalf("mount %s names volume %q, which the pod does not have", m.MountPath, m.Name)
		}
	}
	t.Fatalf("%s is on no volume mount of container %s", path, c.Name)
	return nil, ""
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

// budgets is what config.toml allows edgehost to use.
type budgets struct {
	steadyMiB, limitMiB float64 // memory: one generation; with a swap in progress
	cores               int64
}

// baseMiB is edgehost's own memory besides guest memory and models (measured RSS 55-69 MiB
// serving the classify pipeline; RATIONALE.md, "Fleet manifests").
const baseMiB = 64

// budgetsOf sums config's budgets; modelFile maps a model path in the config to a file
// here, whose size counts.
func budgetsOf(t *testing.T, cfg *config.Config, modelFile func(string) string) budgets {
	t.Helper()
	var guest, models float64
	var cores int64
	interpreters := map[string]int{}
	for _, name := range cfg.PipelineNames() {
		p := cfg.Pipelines[name]
		guest += float64(p.Workers * (p.Pre.MemoryLimitMB + p.Post.MemoryLimitMB))
		interpreters[p.Model] += p.Workers
		cores += int64(p.Workers * cfg.Models[p.Model].Threads)
	}
	for _, name := range cfg.ModelNames() {
		m := cfg.Models[name]
		st, err := os.Stat(modelFile(m.Path))
		if err != nil {
			t.Fatalf("model %s: %v (run `make deps` first)", name, err)
		}
		interpreters[name] += m.Workers
		if m.IdleThreads != 1 && (m.IdleThreads == 0 || m.IdleThreads > m.Threads) {
			// The idle interpreter (idle_threads; by default the cores, more than one in
			// any pod with a CPU limit above 1): one more, built on the first lone request.
			interpreters[name]++
		}
		models += float64(st.Size()) * float64(1+interpreters[name]) / (1 << 20)
		cores += int64(m.Workers * m.Threads)
	}
	return budgets{steadyMiB: baseMiB + guest + models, limitMiB: baseMiB + 2*guest + 2*models, cores: cores}
}

// checkResources: the memory limit covers the budgets with a swap in progress and is at
// most 64 MiB over (derived, not guessed); the request covers one generation; the CPU
// limit is the cores the config's workers and threads use.
func checkResources(t *testing.T, where string, r corev1.ResourceRequirements, b budgets) {
	t.Helper()
	mib := func(q resource.Quantity) float64 { return float64(q.Value()) / (1 << 20) }
	lim, req := r.Limits[corev1.ResourceMemory], r.Requests[corev1.ResourceMemory]
	if mib(lim) < b.limitMiB || mib(lim) > b.limitMiB+64 {
		t.Errorf("%s: memory limit %s, want the budgets' %.0f MiB rounded up to at most 64 MiB more", where, lim.String(), b.limitMiB)
	}
	if mib(req) < b.steadyMiB || mib(req) > mib(lim) {
		t.Errorf("%s: memory request %s, want at least one generation's %.0f MiB and at most the limit", where, req.String(), b.steadyMiB)
	}
	cpu := r.Limits[corev1.ResourceCPU]
	if cpu.MilliValue() != b.cores*1000 {
		t.Errorf("%s: cpu limit %s, want %d (workers x threads)", where, cpu.String(), b.cores)
	}
	if rc := r.Requests[corev1.ResourceCPU]; rc.Cmp(cpu) > 0 {
		t.Errorf("%s: cpu request %s over the limit %s", where, rc.String(), cpu.String())
	}
	t.Logf("%s: budgets %.0f MiB steady, %.0f MiB during a swap, %d cores; limits %s, %s", where, b.steadyMiB, b.limitMiB, b.cores, lim.String(), cpu.String())
}

func TestDaemonSet(t *testing.T) {
	cm, ds := kubernetesManifests(t)
	pod := &ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := &pod.Containers[0]
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Fatalf("selector %s=%s does not match the pod template's labels %v", k, v, ds.Spec.Template.Labels)
		}
	}

	// config.toml: where the container reads it, from the ConfigMap, valid for edgehost.
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) || !slices.Contains(c.Args, "serve") {
		t.Fatalf("args %q: want --config FILE serve", c.Args)
	}
	cfgPath := c.Args[i+1]
	vol, key := volumeFor(t, pod, c, cfgPath)
	if vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name {
		t.Fatalf("%s is not on the ConfigMap %s", cfgPath, cm.Name)
	}
	text, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q", cm.Name, key)
	}
	cfg, err := config.Parse(cfgPath, []byte(text))
	if err != nil {
		t.Fatalf("the ConfigMap's config.toml: %v", err)
	}

	// Every file it names is on a mount: plugins and labels in edgehost-plugins (built from
	// the repository's files), models on the node's model directory.
	plugins := pluginConfigMap(t)
	size := 0
	for k, v := range plugins.Data {
		size += len(k) + len(v)
	}
	for k, v := range plugins.BinaryData {
		size += len(k) + len(v)
	}
	if size > corev1.MaxSecretSize { // the same 1 MiB limit applies to ConfigMaps
		t.Fatalf("edgehost-plugins would be %d bytes, over the 1 MiB ConfigMap limit", size)
	}
	t.Logf("edgehost-plugins: %d bytes", size)
	onNode := ""
	checkFile := func(path string) {
		v, rel := volumeFor(t, pod, c, path)
		switch {
		case v.ConfigMap != nil && v.ConfigMap.Name == "edgehost-plugins":
			_, inData := plugins.Data[rel]
			_, inBinary := plugins.BinaryData[rel]
			if !inData && !inBinary {
				t.Errorf("%s: edgehost-plugins has no key %q (keys come from pluginFiles)", path, rel)
			}
		case v.HostPath != nil:
			onNode = v.HostPath.Path
		default:
			t.Errorf("%s is on volume %s, neither edgehost-plugins nor the node's model directory", path, v.Name)
		}
	}
	for _, name := range cfg.PipelineNames() {
		p := cfg.Pipelines[name]
		for _, pl := range []config.Plugin{p.Pre, p.Post} {
			checkFile(pl.Path)
			for _, f := range pl.ParamsFiles {
				checkFile(f)
			}
		}
	}
	for _, name := range cfg.ModelNames() {
		checkFile(cfg.Models[name].Path)
	}
	if onNode == "" {
		t.Fatal("no model is on the node's model directory")
	}
	if cache := cfg.Runtime.CacheDir; cache != "" {
		if v, _ := volumeFor(t, pod, c, cache+"/x"); v.EmptyDir == nil {
			t.Errorf("cache_dir %s is not on an emptyDir (the root file system is read-only)", cache)
		}
	}

	// Ports, probes and scrape annotations agree with config.toml's addresses.
	httpPort, grpcPort := containerPort(t, c, "http"), containerPort(t, c, "grpc")
	if httpPort != port(t, cfg.Server.Address) || grpcPort != port(t, cfg.Server.GRPCAddress) {
		t.Fatalf("ports http %d grpc %d, config.toml says %s and %s", httpPort, grpcPort, cfg.Server.Address, cfg.Server.GRPCAddress)
	}
	for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		want := "/v2/health/live"
		if name == "readiness" {
			want = "/v2/health/ready"
		}
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != want || pr.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET %s on port http", name, pr, want)
		}
	}
	a := ds.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != fmt.Sprint(httpPort) {
		t.Errorf("scrape annotations %v, want scrape=true, path=/metrics, port=%d", a, httpPort)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || float64(*g) <= cfg.Server.ShutdownTimeout.Seconds() {
		t.Errorf("terminationGracePeriodSeconds %v must exceed shutdown_timeout %v", g, cfg.Server.ShutdownTimeout)
	}
	checkResources(t, "DaemonSet", c.Resources, budgetsOf(t, cfg, func(p string) string {
		return filepath.Join(root, ".deps/models", filepath.Base(p))
	}))
}

// The KServe CRDs, mirrored strictly for the fields these manifests use (the
// serving.kserve.io Go types would bring Knative and controller-runtime into this module).
// Field names and JSON tags follow github.com/kserve/kserve/pkg/apis/serving: v1alpha1
// ServingRuntimeSpec (with ServingRuntimePodSpec inline) and v1beta1 InferenceService.

type supportedModelFormat struct {
	Name       string  `json:"name"`
	Version    *string `json:"version,omitempty"`
	AutoSelect *bool   `json:"autoSelect,omitempty"`
	Priority   *int32  `json:"priority,omitempty"`
}

type clusterServingRuntime struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		SupportedModelFormats []supportedModelFormat `json:"supportedModelFormats,omitempty"`
		MultiModel            *bool                  `json:"multiModel,omitempty"`
		Disabled              *bool                  `json:"disabled,omitempty"`
		ProtocolVersions      []string               `json:"protocolVersions,omitempty"`
		Containers            []corev1.Container     `json:"containers"`
		Volumes               []corev1.Volume        `json:"volumes,omitempty"`
		NodeSelector          map[string]string      `json:"nodeSelector,omitempty"`
		Labels                map[string]string      `json:"labels,omitempty"`
		Annotations           map[string]string      `json:"annotations,omitempty"`
	} `json:"spec,omitempty"`
}

type inferenceService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Predictor struct {
			Model struct {
				ModelFormat     supportedModelFormat `json:"modelFormat"`
				Runtime         *string              `json:"runtime,omitempty"`
				ProtocolVersion *string              `json:"protocolVersion,omitempty"`
				StorageURI      *string              `json:"storageUri,omitempty"`
			} `json:"model"`
		} `json:"predictor"`
	} `json:"spec"`
}

// flag returns the value after name in args.
func flag(t *testing.T, args []string, name string) string {
	t.Helper()
	i := slices.Index(args, name)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("args %q have no %s VALUE", args, name)
	}
	return args[i+1]
}

func TestKServe(t *testing.T) {
	d := docs(t, "kserve/edgehost-runtime.yaml")
	if len(d) != 1 {
		t.Fatalf("%d documents", len(d))
	}
	var rt clusterServingRuntime
	strict(t, d[0], "serving.kserve.io/v1alpha1", "ClusterServingRuntime", &rt)
	for _, p := range rt.Spec.ProtocolVersions {
		if !slices.Contains([]string{"v1", "v2", "grpc-v1", "grpc-v2"}, p) {
			t.Errorf("protocol version %q is not one KServe knows", p)
		}
	}
	if !slices.Contains(rt.Spec.ProtocolVersions, "v2") || !slices.Contains(rt.Spec.ProtocolVersions, "grpc-v2") {
		t.Errorf("protocolVersions %v, want v2 and grpc-v2", rt.Spec.ProtocolVersions)
	}
	if len(rt.Spec.Containers) != 1 || rt.Spec.Containers[0].Name != "kserve-container" {
		t.Fatalf("containers %v: KServe wants one named kserve-container", rt.Spec.Containers)
	}
	c := &rt.Spec.Containers[0]
	if cfg := flag(t, c.Args, "--config"); !strings.HasPrefix(cfg, "/mnt/models/") {
		t.Errorf("--config %s is not in /mnt/models, where KServe puts the storageUri", cfg)
	}
	httpPort, grpcPort := containerPort(t, c, "http1"), containerPort(t, c, "h2c")
	if port(t, flag(t, c.Args, "--addr")) != httpPort || port(t, flag(t, c.Args, "--grpc-addr")) != grpcPort {
		t.Errorf("--addr / --grpc-addr %q do not match the ports http1 %d and h2c %d", c.Args, httpPort, grpcPort)
	}
	if a := rt.Spec.Annotations; a["prometheus.kserve.io/port"] != fmt.Sprint(httpPort) || a["prometheus.kserve.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v", a)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" ||
		c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/v2/health/live" {
		t.Errorf("probes: want readiness on /v2/health/ready and liveness on /v2/health/live")
	}
	// The same budgets as the DaemonSet's config.toml (what the example bucket holds).
	cm, _ := kubernetesManifests(t)
	cfg, err := config.Parse("/mnt/models/config.toml", []byte(cm.Data["config.toml"]))
	if err != nil {
		t.Fatal(err)
	}
	checkResources(t, "ClusterServingRuntime", c.Resources, budgetsOf(t, cfg, func(p string) string {
		return filepath.Join(root, ".deps/models", filepath.Base(p))
	}))

	d = docs(t, "kserve/inferenceservice.yaml")
	var isvc inferenceService
	strict(t, d[0], "serving.kserve.io/v1beta1", "InferenceService", &isvc)
	m := isvc.Spec.Predictor.Model
	if m.Runtime == nil || *m.Runtime != rt.Name {
		t.Errorf("InferenceService runtime %v, want %s", m.Runtime, rt.Name)
	}
	if !slices.ContainsFunc(rt.Spec.SupportedModelFormats, func(f supportedModelFormat) bool { return f.Name == m.ModelFormat.Name }) {
		t.Errorf("model format %q is not one the runtime supports", m.ModelFormat.Name)
	}
	if m.ProtocolVersion == nil || !slices.Contains(rt.Spec.ProtocolVersions, *m.ProtocolVersion) {
		t.Errorf("protocolVersion %v is not one the runtime supports", m.ProtocolVersion)
	}
	if isvc.Annotations["serving.kserve.io/deploymentMode"] != "RawDeployment" {
		t.Errorf("two ports (HTTP and gRPC) need serving.kserve.io/deploymentMode: RawDeployment")
	}
}
