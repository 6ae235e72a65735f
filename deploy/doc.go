// Package deploy holds edgehost's fleet manifests (kubernetes/: a DaemonSet with its
// ConfigMap; kserve/: a ClusterServingRuntime and an InferenceService) and the test that
// decodes them strictly into the Kubernetes API types. It is its own Go module so that
// k8s.io/api stays out of edgehost's dependencies; `make test` runs it.
package deploy
