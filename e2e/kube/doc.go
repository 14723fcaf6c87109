// Package kube is the end-to-end harness for tests that need a real
// Kubernetes API server: it runs Debian's etcd and a kube-apiserver built by
// scripts/install-kube.sh, and it isolates every test in a private network
// namespace so EndpointSlices can carry routable (non-loopback) addresses
// without any traffic leaving the machine's loopback or that namespace.
//
// A test package opts in from TestMain; the test binary then re-executes
// itself inside a fresh namespace and every process it starts (etcd, the API
// server, echo backends, HAProxy, the sidecar) lives there:
//
//	func TestMain(m *testing.M) { os.Exit(kube.RunInNetns(m)) }
//
//	func TestSomething(t *testing.T) {
//		c := kube.Start(t)                  // etcd + kube-apiserver, stopped at cleanup
//		echo := kube.StartEcho(t, "web", kube.BackendIP(0)+":8080")
//		_, _ = c.Client, echo                // kubernetes.Interface, echo.URL
//		_ = c.StopAPIServer()                // then StartAPIServer: same port, keys and etcd
//	}
//
// Prerequisites (root, ip, etcd, the cached kube-apiserver) are installed by
// scripts/install-kube.sh; when one is missing the tests fail with a message
// naming that script instead of skipping.
package kube
