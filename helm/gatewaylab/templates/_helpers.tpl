{{/* The chart name, or nameOverride. */}}
{{- define "gatewaylab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else the release name when
it already contains the chart name, else <release>-<chart>. Truncated so that
suffixes such as "-backend-headless" still fit the 63-character DNS label.
*/}}
{{- define "gatewaylab.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gatewaylab.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "gatewaylab.labels" -}}
helm.sh/chart: {{ include "gatewaylab.chart" .ctx }}
{{ include "gatewaylab.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ include "gatewaylab.name" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels. Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "gatewaylab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatewaylab.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gatewaylab.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gatewaylab.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Resource names. */}}
{{- define "gatewaylab.gateway.fullname" -}}{{ include "gatewaylab.fullname" . }}-gateway{{- end }}
{{- define "gatewaylab.backend.fullname" -}}{{ include "gatewaylab.fullname" . }}-backend{{- end }}
{{- define "gatewaylab.backend.headless" -}}{{ include "gatewaylab.fullname" . }}-backend-headless{{- end }}
{{- define "gatewaylab.locust.fullname" -}}{{ include "gatewaylab.fullname" . }}-locust{{- end }}
{{- define "gatewaylab.locust.jobName" -}}{{ include "gatewaylab.fullname" . }}-locust-r{{ .Release.Revision }}{{- end }}
{{- define "gatewaylab.scenario.fullname" -}}{{ include "gatewaylab.fullname" . }}-scenario{{- end }}
{{- define "gatewaylab.locust.master" -}}{{ include "gatewaylab.fullname" . }}-locust-master{{- end }}

{{/* The Secret holding the admin token, and its key. */}}
{{- define "gatewaylab.adminSecretName" -}}
{{- default (printf "%s-admin" (include "gatewaylab.fullname" .)) .Values.admin.existingSecret }}
{{- end }}

{{/* image: "<repository>:<tag>", tag defaulting to the chart's appVersion. Call with (dict "image" .Values.x.image "ctx" $). */}}
{{- define "gatewaylab.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag | toString) }}
{{- end }}

{{/* In-cluster URLs. */}}
{{- define "gatewaylab.namespaceDomain" -}}
{{- printf "%s.svc.%s" .Release.Namespace .Values.clusterDomain }}
{{- end }}
{{- define "gatewaylab.gateway.url" -}}
{{- printf "http://%s.%s:%v" (include "gatewaylab.gateway.fullname" .) (include "gatewaylab.namespaceDomain" .) .Values.gateway.service.port }}
{{- end }}
{{- define "gatewaylab.backend.dnsName" -}}
{{- printf "%s.%s" (include "gatewaylab.backend.headless" .) (include "gatewaylab.namespaceDomain" .) }}
{{- end }}

{{/*
The backend pods by stable DNS name, as a list of {name, url}: server1 is
<fullname>-backend-0.<headless>.<ns>.svc.<clusterDomain>, and so on: the
names and URLs the Locust users register. In a scenario run, pod i takes
the name of the scenario's backend i (the same three names by default), so
the gateway's per-backend figures carry the names the scenario's gates use.
*/}}
{{- define "gatewaylab.backend.servers" -}}
{{- $names := list }}
{{- if .Values.scenario.enabled }}
{{- $names = include "gatewaylab.scenario.read" . | fromJson | include "gatewaylab.scenario.backends" | fromJsonArray }}
{{- end }}
{{- $servers := list }}
{{- range $i := until (int .Values.backend.replicaCount) }}
{{- $host := printf "%s-%d.%s" (include "gatewaylab.backend.fullname" $) $i (include "gatewaylab.backend.dnsName" $) }}
{{- $name := printf "server%d" (add1 $i) }}
{{- if lt $i (len $names) }}{{ $name = index $names $i | toString }}{{ end }}
{{- $servers = append $servers (dict "name" $name "url" (printf "http://%s:%v" $host $.Values.backend.port)) }}
{{- end }}
{{- toYaml $servers }}
{{- end }}

{{/*
A duration such as 250ms, 5s, 2m, 1h or 1m30s, in whole seconds rounded up.
values.schema.json restricts durations to this form.
*/}}
{{- define "gatewaylab.seconds" -}}
{{- $ms := 0 }}
{{- range $part := regexFindAll "[0-9]+(ms|s|m|h)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+" $part | int }}
{{- if hasSuffix "ms" $part }}{{ $ms = add $ms $n }}
{{- else if hasSuffix "s" $part }}{{ $ms = add $ms (mul $n 1000) }}
{{- else if hasSuffix "m" $part }}{{ $ms = add $ms (mul $n 60000) }}
{{- else }}{{ $ms = add $ms (mul $n 3600000) }}
{{- end }}
{{- end }}
{{- div (add $ms 999) 1000 }}
{{- end }}

{{/* The gateway's settings file, from values. */}}
{{- define "gatewaylab.gateway.config" -}}
{{- $c := mustMergeOverwrite (deepCopy .Values.gateway.config) (include "gatewaylab.scenario.gatewaySettings" . | fromJson) }}
{{- $servers := list }}
{{- if eq .Values.gateway.backends.mode "static" }}
{{- $servers = include "gatewaylab.backend.servers" . | fromYamlArray }}
{{- end }}
{{- $servers = concat $servers .Values.gateway.backends.extraServers }}
{{- if $servers }}
{{- $_ := set $c "servers" $servers }}
{{- end }}
{{- $discovery := deepCopy $c.discovery }}
{{- $_ := set $discovery "dns_name" (ternary (include "gatewaylab.backend.dnsName" .) "" (eq .Values.gateway.backends.mode "dns")) }}
{{- $_ := set $c "discovery" $discovery }}
{{- $admin := dict "token_file" "/etc/gateway/admin/token" }}
{{- range $key, $value := $c.admin }}
{{- if not (kindIs "invalid" $value) }}{{ $_ := set $admin $key $value }}{{ end }}
{{- end }}
{{- $_ := set $c "admin" $admin }}
{{- if .Values.gateway.persistRegistrations }}
{{- $_ := set $c "state_file" "/var/lib/gateway/registrations.json" }}
{{- end }}
{{- $c = mustMergeOverwrite $c (deepCopy .Values.gateway.extraConfig) }}
{{- toYaml $c }}
{{- end }}

{{/* Pod security context and container security context. */}}
{{- define "gatewaylab.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
{{- define "gatewaylab.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* The locust containers' common environment. */}}
{{- define "gatewaylab.locust.env" -}}
- name: HOME
  value: /tmp
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: BACKENDS
  value: {{ include "gatewaylab.locust.backends" . | quote }}
- name: REGISTER
  value: {{ include "gatewaylab.locust.register" . | quote }}
{{- if .Values.locust.fastHttpUser }}
- name: LOCUST_FAST_HTTP
  value: "true"
{{- end }}
- name: GATEWAY_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "gatewaylab.adminSecretName" . }}
      key: {{ .Values.admin.secretKey }}
{{- with .Values.locust.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* REGISTER for the locustfile: locust.register, or by default only in backends.mode register. */}}
{{- define "gatewaylab.locust.register" -}}
{{- if kindIs "invalid" .Values.locust.register }}
{{- eq .Values.gateway.backends.mode "register" }}
{{- else }}
{{- .Values.locust.register }}
{{- end }}
{{- end }}

{{/* BACKENDS for the locustfile: server1=http://<backend-0 stable name>:5000,... */}}
{{- define "gatewaylab.locust.backends" -}}
{{- $pairs := list }}
{{- range (include "gatewaylab.backend.servers" . | fromYamlArray) }}
{{- $pairs = append $pairs (printf "%s=%s" .name .url) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
The OpenTelemetry variables of the gateway or backend container, when
tracing.enabled (else nothing): the standard OTEL_* variables the services
read, and the pod's namespace and name from the downward API, which the
kubelet substitutes into OTEL_RESOURCE_ATTRIBUTES ($(VAR) refers to a
variable defined earlier in the list; "$$" is a literal "$"). A variable the
component's extraEnv also sets is left to extraEnv, so it can override one
setting without duplicate names in the list.
Call with (dict "ctx" $ "component" "gateway" "values" .Values.gateway).
*/}}
{{- define "gatewaylab.tracing.env" -}}
{{- $t := .ctx.Values.tracing }}
{{- if $t.enabled }}
{{- $taken := dict }}
{{- range .values.extraEnv }}{{ $_ := set $taken .name true }}{{ end }}
{{- $attrs := list "k8s.namespace.name=$(K8S_NAMESPACE_NAME)" "k8s.pod.name=$(K8S_POD_NAME)" }}
{{- $attrs = append $attrs (printf "k8s.container.name=%s" .component) }}
{{- $attrs = append $attrs (printf "service.version=%s" (default .ctx.Chart.AppVersion .values.image.tag)) }}
{{- range $key, $value := $t.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $key (toString $value | replace "$" "$$")) }}
{{- end }}
{{- $vars := list
  (dict "name" "K8S_NAMESPACE_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace")))
  (dict "name" "K8S_POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name")))
  (dict "name" "OTEL_EXPORTER_OTLP_ENDPOINT" "value" $t.endpoint)
  (dict "name" "OTEL_EXPORTER_OTLP_PROTOCOL" "value" $t.protocol)
  (dict "name" "OTEL_SERVICE_NAME" "value" (get $t.serviceNames .component))
  (dict "name" "OTEL_RESOURCE_ATTRIBUTES" "value" (join "," $attrs))
  (dict "name" "OTEL_TRACES_SAMPLER" "value" $t.sampler) }}
{{- if hasSuffix "traceidratio" $t.sampler }}
{{- $vars = append $vars (dict "name" "OTEL_TRACES_SAMPLER_ARG" "value" (toString $t.samplerArg)) }}
{{- end }}
{{- $env := list }}
{{- range $vars }}
{{- if not (hasKey $taken .name) }}{{ $env = append $env . }}{{ end }}
{{- end }}
{{- with $env }}{{ toYaml . }}{{ end }}
{{- end }}
{{- end }}

{{/* Checks of value combinations the schema cannot express. */}}
{{- define "gatewaylab.validate" -}}
{{- $f := .Values.locust.locustfile }}
{{- if and $f.existingConfigMap (or $f.content $f.extraFiles) }}
{{- fail "locust.locustfile.existingConfigMap cannot be combined with locust.locustfile.content or extraFiles: put every file in your ConfigMap" }}
{{- end }}
{{- if or (hasKey $f.extraFiles "locustfile.py") (hasKey $f.extraFiles "run_locust.py") }}
{{- fail "locust.locustfile.extraFiles: locustfile.py and run_locust.py are taken (give your locustfile as locust.locustfile.content)" }}
{{- end }}
{{- if and .Values.locust.fastHttpUser (or $f.content $f.existingConfigMap) }}
{{- fail "locust.fastHttpUser switches the shipped locustfile's users; in your own locustfile (locust.locustfile) subclass locust.FastHttpUser instead" }}
{{- end }}
{{- if and .Values.scenario.enabled (or $f.content $f.existingConfigMap $f.extraFiles) }}
{{- fail "locust.locustfile cannot be combined with scenario.enabled: the scenario runner drives Locust with its own locustfile" }}
{{- end }}
{{- include "gatewaylab.scenario.validate" . }}
{{- if and .Values.tracing.enabled (not .Values.tracing.endpoint) }}
{{- fail "tracing.enabled=true needs tracing.endpoint, the OTLP/HTTP receiver's base URL (e.g. http://tempo.monitoring:4318)" }}
{{- end }}
{{- if hasKey .Values.tracing.resourceAttributes "service.name" }}
{{- fail "tracing.resourceAttributes: set service.name through tracing.serviceNames (one per component)" }}
{{- end }}
{{- if eq .Values.gateway.backends.mode "register" }}
{{- if not .Values.locust.enabled }}
{{- fail "gateway.backends.mode=register needs locust.enabled=true: nothing else registers the backends (use static or dns)" }}
{{- end }}
{{- if gt (int .Values.gateway.replicaCount) 1 }}
{{- fail "gateway.backends.mode=register works with one gateway replica only: registrations reach one pod (use static or dns)" }}
{{- end }}
{{- if eq (toString .Values.locust.register) "false" }}
{{- fail "gateway.backends.mode=register needs locust.register (true or null): with locust.register=false nothing registers the backends" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Liveness (/healthz) and readiness (/readyz) probes on the `http` port. Call with a component's values. */}}
{{- define "gatewaylab.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .livenessProbe.periodSeconds }}
  timeoutSeconds: {{ .livenessProbe.timeoutSeconds }}
  failureThreshold: {{ .livenessProbe.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .readinessProbe.periodSeconds }}
  timeoutSeconds: {{ .readinessProbe.timeoutSeconds }}
  failureThreshold: {{ .readinessProbe.failureThreshold }}
{{- end }}

{{/* nodeSelector, tolerations, affinity and topology spread of a pod. Call with a component's values. */}}
{{- define "gatewaylab.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
