{{/* Pieces shared by the Locust Job, workers and web UI. */}}

{{/* Pod spec fields before `containers`. */}}
{{- define "gatewaylab.locust.podSpecCommon" -}}
serviceAccountName: {{ include "gatewaylab.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "gatewaylab.podSecurityContext" . | nindent 2 }}
{{- include "gatewaylab.scheduling" .Values.locust }}
{{- end }}

{{/* Container fields shared by every Locust container (after name/command/args). */}}
{{- define "gatewaylab.locust.containerCommon" -}}
image: {{ include "gatewaylab.image" (dict "image" .Values.locust.image "ctx" .) }}
imagePullPolicy: {{ .Values.locust.image.pullPolicy }}
securityContext:
  {{- include "gatewaylab.securityContext" . | nindent 2 }}
env:
  {{- include "gatewaylab.locust.env" . | nindent 2 }}
{{- end }}

{{/* The locustfile's name in its mounted directory: the chart's ConfigMap or the user's. */}}
{{- define "gatewaylab.locust.locustfileKey" -}}
{{- if .Values.locust.locustfile.existingConfigMap }}{{ .Values.locust.locustfile.existingConfigMapKey }}{{ else }}locustfile.py{{ end }}
{{- end }}

{{/* Rolls the pods when the locustfile changes: a hash of what the chart puts in its ConfigMap, or of the user's ConfigMap's name and key. */}}
{{- define "gatewaylab.locust.checksum" -}}
{{- $f := .Values.locust.locustfile }}
{{- if $f.existingConfigMap }}
{{- printf "%s/%s" $f.existingConfigMap $f.existingConfigMapKey | sha256sum }}
{{- else }}
{{- list (default (.Files.Get "files/locustfile.py") $f.content) $f.extraFiles | toJson | sha256sum }}
{{- end }}
{{- end }}

{{/* The locustfile options and the target host. */}}
{{- define "gatewaylab.locust.fileArgs" -}}
- -f
- /mnt/locustfile/{{ include "gatewaylab.locust.locustfileKey" . }}
- --host
- {{ include "gatewaylab.gateway.url" . }}
{{- end }}

{{/* `--wait-http` for the gateway and every backend pod. */}}
{{- define "gatewaylab.locust.waitArgs" -}}
- --wait-http
- {{ include "gatewaylab.gateway.url" . }}/readyz
{{- range (include "gatewaylab.backend.servers" . | fromYamlArray) }}
- --wait-http
- {{ .url }}/readyz
{{- end }}
- --wait-timeout
- {{ .Values.locust.waitTimeoutSeconds | quote }}
{{- end }}

{{/* Volumes: the chart's ConfigMap (run_locust.py), the locustfile's directory (the chart's ConfigMap or the user's), and writable /tmp and /reports. */}}
{{- define "gatewaylab.locust.volumes" -}}
- name: runner
  configMap:
    name: {{ include "gatewaylab.locust.fullname" . }}
    items:
      - key: run_locust.py
        path: run_locust.py
- name: locustfile
  configMap:
    name: {{ default (include "gatewaylab.locust.fullname" .) .Values.locust.locustfile.existingConfigMap }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: reports
  emptyDir:
    sizeLimit: 256Mi
{{- end }}
{{- define "gatewaylab.locust.volumeMounts" -}}
- name: runner
  mountPath: /mnt/locust
  readOnly: true
- name: locustfile
  mountPath: /mnt/locustfile
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: reports
  mountPath: /reports
{{- end }}

{{/* Annotations of each run's Jobs: kept by Helm when the next revision starts a new run (locust.keepRuns). */}}
{{- define "gatewaylab.locust.jobAnnotations" -}}
{{- if .Values.locust.keepRuns -}}
annotations:
  helm.sh/resource-policy: keep
{{- end }}
{{- end }}
