{{/* The objects' name: the release's when it contains the chart's name
(release haproxy-sidecar: the names of deploy/), else release-chart. */}}
{{- define "haproxy-sidecar.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Every object's labels: deploy/'s (name, part-of) and Helm's. */}}
{{- define "haproxy-sidecar.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/part-of: haproxy-sidecar
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The load-balancer pods: deploy/'s selector plus the release, so two
releases in one namespace do not select each other's pods. */}}
{{- define "haproxy-sidecar.selectorLabels" -}}
app.kubernetes.io/component: load-balancer
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/name: {{ .Chart.Name }}
{{- end -}}

{{/* repository@digest when a digest is given, else repository:tag (the
chart's appVersion by default). */}}
{{- define "haproxy-sidecar.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The namespace whose Ingresses are served: watchNamespace, or all. */}}
{{- define "haproxy-sidecar.namespaced" -}}
{{- if .Values.watchNamespace }}true{{ end -}}
{{- end -}}

{{/* The rules of deploy/rbac.yaml's ClusterRole; with watchNamespace, a
Role's (ingressclasses are then the ClusterRole's). */}}
{{- define "haproxy-sidecar.namespacedRules" }}
- apiGroups: [networking.k8s.io]
  resources: [ingresses{{ if not .Values.watchNamespace }}, ingressclasses{{ end }}]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch, list]
{{- end }}

{{/* Both containers' security context (deploy/deployment.yaml's). */}}
{{- define "haproxy-sidecar.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}
