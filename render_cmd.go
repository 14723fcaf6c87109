package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/cpulimit"
	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// renderFlags are shared by every command that renders, so that what
// `render` prints is what `run` serves.
type renderFlags struct {
	httpBind       string
	httpsBind      string
	templatesDir   string
	controllerName string
	haproxyBin     string
	// checkTimeout bounds each haproxy -c.
	checkTimeout     time.Duration
	gracePeriod      time.Duration
	workerMaxReloads int
	// settingsConfigMap is "namespace/name" of the settings ConfigMap.
	settingsConfigMap string
	statsBind         string
	// annotationsCompat is --annotations-compat: nginx also reads
	// ingress-nginx's annotations.
	annotationsCompat string
	// defaultService is --default-backend-service.
	defaultService string
	// tcpServicesConfigMap is "namespace/name" of the TCP services
	// ConfigMap.
	tcpServicesConfigMap string
	// threads is --haproxy-threads: nbthread when positive; 0 is
	// "from the CPU limit", which only run resolves (threadsFromLimit)
	// and render leaves out.
	threads int
	// adminAddrs are the sidecar's own listeners (run's --health-addr
	// and --debug-addr), whose ports no TCP service may take.
	adminAddrs []string
	// workerSocket is the worker socket run declares (run's
	// --worker-socket, resolved); "" for the other commands.
	workerSocket string
	// spareBackends is --spare-backends of run and diff
	// (render.Options.SpareBackends); render and explain have none.
	spareBackends int
}

func (f *renderFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.httpBind, "http-bind", ":80", "listen address for plain HTTP")
	fs.StringVar(&f.httpsBind, "https-bind", ":443", "listen address for HTTPS")
	fs.StringVar(&f.templatesDir, "templates", "", "directory of templates overriding the embedded ones")
	fs.StringVar(&f.controllerName, "controller-name", render.DefaultControllerName, "spec.controller of the IngressClasses to serve")
	fs.StringVar(&f.haproxyBin, "haproxy", "haproxy", "HAProxy binary used to validate configurations")
	fs.DurationVar(&f.checkTimeout, "haproxy-check-timeout", reload.DefaultCheckTimeout, "how long haproxy -c may take; a configuration it has not finished checking by then is rejected (a 10k-Ingress configuration takes about 0.5 s)")
	fs.DurationVar(&f.gracePeriod, "grace-period", 30*time.Second, "how long a worker replaced by a reload may finish its connections (hard-stop-after)")
	fs.IntVar(&f.workerMaxReloads, "worker-max-reloads", 10, "how many reloads an old worker may survive (mworker-max-reloads)")
	fs.StringVar(&f.settingsConfigMap, "configmap", "", "namespace/name of the ConfigMap holding global settings (timeouts, TLS, log format...; see README)")
	fs.StringVar(&f.annotationsCompat, "annotations-compat", "none", "also read another controller's Ingress annotations: nginx (nginx.ingress.kubernetes.io/*, see haproxy-sidecar migrate) or none")
	fs.StringVar(&f.defaultService, "default-backend-service", "", "namespace/name[:port] of the Service answering requests no rule matches, when no Ingress's spec.defaultBackend is used (empty: HAProxy answers 404)")
	fs.StringVar(&f.tcpServicesConfigMap, "tcp-services-configmap", "", "namespace/name of the ConfigMap of TCP services, as ingress-nginx's tcp-services: each key a port HAProxy listens on, each value namespace/service:port[:[PROXY][:[PROXY]]] (see README)")
	fs.IntVar(&f.threads, "haproxy-threads", 0, "HAProxy's thread count (nbthread); 0: in run, from the HAProxy container's CPU limit ($HAPROXY_CPU_LIMIT, the Downward API's limits.cpu; with --haproxy-start, the sidecar's own cgroup), rounded up and at most the CPUs there are; without a limit, or in render, HAProxy's default (one per CPU)")
	fs.StringVar(&f.statsBind, "stats-bind", "", "listen address of HAProxy's stats frontend: monitor-uri /healthz, and Prometheus metrics on /metrics when HAProxy has the exporter (empty: none)")
}

// registerSpares adds --spare-backends, for the commands that render as
// a running sidecar does (run, and diff predicting it); render and
// explain show no spares, which serve nothing until run gives them out.
func (f *renderFlags) registerSpares(fs *pflag.FlagSet) {
	fs.IntVar(&f.spareBackends, "spare-backends", 128, "spare backends declared ahead, each given at run time to a new Service whose routes need nothing of their own (no reload); the pool doubles at a reload when they run out (0: none, every new Service reloads)")
}

// renderer turns inputs into files with the flags' settings.
func (f *renderFlags) renderer() (func(render.Inputs, *render.Model) (*render.Model, *haproxycfg.Output, error), error) {
	tmpl, err := templates.Load(f.templatesDir)
	if err != nil {
		return nil, err
	}
	cfg := haproxycfg.Config{HTTPBind: f.httpBind, HTTPSBind: f.httpsBind, Template: tmpl,
		GracePeriod: f.gracePeriod, WorkerMaxReloads: f.workerMaxReloads, Threads: f.threads, WorkerSocket: f.workerSocket}
	if f.threads < 0 || f.threads > cpulimit.MaxThreads {
		return nil, fmt.Errorf("--haproxy-threads %d: want 0 (from the CPU limit) to %d", f.threads, cpulimit.MaxThreads)
	}
	if _, err := render.ParseBind(cfg.HTTPBind); err != nil {
		return nil, fmt.Errorf("--http-bind: %w", err)
	}
	if _, err := render.ParseBind(cfg.HTTPSBind); err != nil {
		return nil, fmt.Errorf("--https-bind: %w", err)
	}
	if f.statsBind != "" {
		if _, err := render.ParseBind(f.statsBind); err != nil {
			return nil, fmt.Errorf("--stats-bind: %w", err)
		}
		// The exporter is used only when the HAProxy that validates (and,
		// in the pod, serves) has it; otherwise it would refuse every
		// configuration.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		promex, err := reload.HasPrometheusExporter(ctx, f.haproxyBin)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("--stats-bind: %w", err)
		}
		cfg.StatsBind, cfg.PrometheusExporter = f.statsBind, promex
	}
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	// Each renderer keeps what it computed for the next render: in run,
	// a change to one object redoes only what depends on it.
	inc := haproxycfg.NewIncremental(cfg)
	return func(in render.Inputs, previous *render.Model) (*render.Model, *haproxycfg.Output, error) {
		opts := opts
		opts.Previous = previous
		return inc.Render(in, opts)
	}, nil
}

// options are the flags that choose what the model holds, checked.
func (f *renderFlags) options() (render.Options, error) {
	if f.settingsConfigMap != "" {
		if _, _, err := render.ParseSettingsRef(f.settingsConfigMap); err != nil {
			return render.Options{}, fmt.Errorf("--configmap: %w", err)
		}
	}
	compat, err := render.ParseCompat(f.annotationsCompat)
	if err != nil {
		return render.Options{}, fmt.Errorf("--annotations-compat: %w", err)
	}
	if f.spareBackends < 0 || f.spareBackends > render.MaxSpareBackends {
		return render.Options{}, fmt.Errorf("--spare-backends %d: want 0 to %d", f.spareBackends, render.MaxSpareBackends)
	}
	opts := render.Options{ControllerName: f.controllerName, SettingsConfigMap: f.settingsConfigMap, AnnotationsCompat: compat,
		SpareBackends: f.spareBackends}
	if f.defaultService != "" {
		ref, err := render.ParseDefaultService(f.defaultService)
		if err != nil {
			return render.Options{}, fmt.Errorf("--default-backend-service: %w", err)
		}
		opts.DefaultService = &ref
	}
	if f.tcpServicesConfigMap != "" {
		if _, _, err := render.ParseTCPServicesRef(f.tcpServicesConfigMap); err != nil {
			return render.Options{}, fmt.Errorf("--tcp-services-configmap: %w", err)
		}
		opts.TCPServicesConfigMap = f.tcpServicesConfigMap
		opts.ReservedPorts = f.reservedPorts()
	}
	return opts, nil
}

// reservedPorts are the ports of the listeners beside the TCP services':
// HAProxy's HTTP, HTTPS and stats frontends and the sidecar's own. A bind
// address that does not parse has no port to reserve (it is refused
// where it is used).
func (f *renderFlags) reservedPorts() []render.ReservedPort {
	var out []render.ReservedPort
	add := func(name, addr string) {
		if addr == "" {
			return
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return
		}
		if n, err := strconv.Atoi(port); err == nil && n > 0 {
			out = append(out, render.ReservedPort{Name: name, Port: n})
		}
	}
	add(render.ListenerHTTP, f.httpBind)
	add(render.ListenerHTTPS, f.httpsBind)
	add("stats", f.statsBind)
	for _, a := range f.adminAddrs {
		add("sidecar's admin", a)
	}
	return out
}

// renderArgs are render's own flags.
type renderArgs struct {
	rf         renderFlags
	manifests  []string
	outDir     string
	toStdout   bool
	noValidate bool
}

func newRenderCommand(stdout, stderr io.Writer) *cobra.Command {
	var a renderArgs
	cmd := &cobra.Command{
		Use:   "render --manifests PATH [--manifests PATH...] (--out DIR | --stdout) [flags]",
		Short: "Write HAProxy's configuration for the objects in manifest files",
		Example: `  haproxy-sidecar render --manifests ingresses.yaml --stdout
  kubectl get ingress,svc,endpointslice,secret,ingressclass -A -o yaml > cluster.yaml
  haproxy-sidecar render --manifests cluster.yaml --out /tmp/haproxy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return result(renderCommand(cmd, a, stdout, stderr))
		},
	}
	fs := cmd.Flags()
	a.rf.register(fs)
	fs.StringArrayVar(&a.manifests, "manifests", nil, "file or directory of Kubernetes YAML/JSON manifests (required; repeat for more)")
	fs.StringVar(&a.outDir, "out", "", "directory to write haproxy.cfg and the files it references")
	fs.BoolVar(&a.toStdout, "stdout", false, "print haproxy.cfg instead of writing --out")
	fs.BoolVar(&a.noValidate, "no-validate", false, "do not check the result with haproxy -c")
	return cmd
}

func renderCommand(cmd *cobra.Command, a renderArgs, stdout, stderr io.Writer) int {
	ctx := cmd.Context()
	rf, manifests, outDir, toStdout, noValidate := a.rf, a.manifests, a.outDir, a.toStdout, a.noValidate
	if len(manifests) == 0 || (outDir == "") == !toStdout {
		return usageFailure(stderr, cmd, "--manifests and exactly one of --out or --stdout are required")
	}

	renderFn, err := rf.renderer()
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	in, loadProblems, err := manifest.LoadAll(manifests...)
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	m, out, err := renderFn(in, nil)
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	printProblems(stderr, append(loadProblems, m.Problems...))

	dir := outDir
	if toStdout {
		// The configuration is still validated, which needs its files
		// on disk next to it.
		tmp, err := os.MkdirTemp("", "haproxy-sidecar-render-")
		if err != nil {
			fmt.Fprintf(stderr, "render: %v\n", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if _, err := reload.WriteDir(dir, controller.Files(out)); err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	if !noValidate {
		if err := validate(ctx, rf, dir, out); err != nil {
			fmt.Fprintf(stderr, "render: %v\n", err)
			return 1
		}
	}
	if toStdout {
		if _, err := stdout.Write(out.Get(haproxycfg.ConfigFile)); err != nil {
			return 1
		}
	} else {
		fmt.Fprintf(stderr, "wrote %s (%d files, %d Ingresses served, %d routes, %d backends)\n",
			filepath.Join(dir, haproxycfg.ConfigFile), len(out.Files), len(m.Served), len(m.Routes), len(m.Backends))
	}
	return 0
}

func printProblems(w io.Writer, problems []render.Problem) {
	for _, p := range problems {
		// The reason last, for scripts: the words before it are for people.
		fmt.Fprintf(w, "%s [%s]\n", p.Report(), p.Reason)
	}
}

// validate runs haproxy -c and names the objects behind each line HAProxy
// complains about.
func validate(ctx context.Context, rf renderFlags, dir string, out *haproxycfg.Output) error {
	err := reload.CheckWithin(ctx, rf.haproxyBin, filepath.Join(dir, haproxycfg.ConfigFile), rf.checkTimeout)
	var ce *reload.CheckError
	if errors.As(err, &ce) {
		reasons := controller.ExplainCheckError(ce, out)
		if ce.TimedOut() && rf.templatesDir != "" {
			reasons += "\nthe custom templates in " + rf.templatesDir + " (--templates) render it: a lua-load script of theirs, or another directive, may not finish"
		}
		return errors.New("HAProxy rejected the configuration:\n" + indent(reasons, "  "))
	}
	return err
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
