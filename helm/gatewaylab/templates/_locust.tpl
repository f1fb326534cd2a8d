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

{{/* The locustfile options and the target host. */}}
{{- define "gatewaylab.locust.fileArgs" -}}
- -f
- /mnt/locust/locustfile.py
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

{{/* Volumes: the locustfile ConfigMap, and writable /tmp and /reports. */}}
{{- define "gatewaylab.locust.volumes" -}}
- name: locustfile
  configMap:
    name: {{ include "gatewaylab.locust.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: reports
  emptyDir:
    sizeLimit: 256Mi
{{- end }}
{{- define "gatewaylab.locust.volumeMounts" -}}
- name: locustfile
  mountPath: /mnt/locust
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: reports
  mountPath: /reports
{{- end }}
