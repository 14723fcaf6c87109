package cluster

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/sidecartest"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// TCP services through the Kubernetes source: the ConfigMap named by
// --tcp-services-configmap is read from the API server, its entry carries
// a line protocol to the Service's endpoint, and the endpoint moving to
// another address (an EndpointSlice update) reaches HAProxy through the
// runtime API, without a reload; an entry added to the ConfigMap is served
// too. On HAProxy 2.6 and 3.0.
func TestClusterTCPServices(t *testing.T) {
	for version, bin := range map[string]string{"2.6": testenv.HAProxy26(t), "3.0": testenv.HAProxy30(t)} {
		t.Run("haproxy-"+version, func(t *testing.T) {
			c := kube.Start(t)
			e := &env{t: t, cluster: c, client: c.Client, ns: "e2e-tcp-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
			e.create(namespace(e.ns))
			e.create(defaultClass())
			kubeconfig, err := c.WriteKubeconfig()
			if err != nil {
				t.Fatal(err)
			}
			e.sidecar = sidecartest.Start(t, sidecartest.Options{HAProxy: bin, Kubeconfig: kubeconfig, MinReloadInterval: 100 * time.Millisecond,
				TCPServicesConfigMap: e.ns + "/tcp-services", Wait: sidecartest.WaitReady})

			a := testenv.StartLineEchoAt(t, "a", kube.BackendIP(0)+":0", false)
			b := testenv.StartLineEchoAt(t, "b", kube.BackendIP(1)+":"+strconv.Itoa(a.Port), false)
			ports := sidecartest.FreePorts(t, 2)
			addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
			e.service("line", int32(a.Port), kube.BackendIP(0))
			ctx := e.ctx()
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "tcp-services"},
				Data: map[string]string{strconv.Itoa(ports[0]): e.ns + "/line:http"}}
			if _, err := e.client.CoreV1().ConfigMaps(e.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			expectLine := func(addr, want string) {
				t.Helper()
				e.sidecar.Eventually(20*time.Second, fmt.Sprintf("%s answering %q", addr, want), func() error {
					got, err := testenv.SayOnce(addr, nil, "hello")
					if err != nil {
						return err
					}
					if got != want {
						return fmt.Errorf("answered %q", got)
					}
					return nil
				})
			}
			expectLine(addr(0), "a:hello")

			// The endpoint moves: runtime API, no reload.
			time.Sleep(200 * time.Millisecond) // the first reload's old worker leaves
			before := e.sidecar.Procs()
			es, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Get(ctx, "line-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			es.Endpoints[0].Addresses = []string{kube.BackendIP(1)}
			if _, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			expectLine(addr(0), "b:hello")
			if after := e.sidecar.Procs(); after.Reloads != before.Reloads || after.CurrentWorker() != before.CurrentWorker() {
				t.Errorf("HAProxy was reloaded: reloads %d -> %d, worker %d -> %d",
					before.Reloads, after.Reloads, before.CurrentWorker(), after.CurrentWorker())
			}
			if b.Conns() == 0 {
				t.Error("the new endpoint saw no connection")
			}

			// An entry added to the ConfigMap is served (a reload).
			cm, err = e.client.CoreV1().ConfigMaps(e.ns).Get(ctx, "tcp-services", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cm.Data[strconv.Itoa(ports[1])] = e.ns + "/line:80"
			if _, err := e.client.CoreV1().ConfigMaps(e.ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			expectLine(addr(1), "b:hello")
			expectLine(addr(0), "b:hello")
		})
	}
}
