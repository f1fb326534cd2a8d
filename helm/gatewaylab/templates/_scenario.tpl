{{/*
Scenario runs (scenario.enabled): the Locust Job runs the project's scenario
runner (`python -m scenario run ... --target kubernetes`), mounted from the
ConfigMap <fullname>-scenario, instead of plain Locust. The helpers here read
the scenario (a shipped one or --set-file) so that the chart can refuse what
cannot work, name the gateway's backends as the scenario does, render the
scenario's gateway settings into the gateway's config and size the Job's
deadline. A scenario in an existing ConfigMap is not read: only the runner
checks it.
*/}}

{{/* The shipped scenarios (files/scenarios/*.yaml, a link to deploy/scenarios/), by name, sorted. */}}
{{- define "gatewaylab.scenario.shipped" -}}
{{- $names := list }}
{{- range $path, $_ := .Files.Glob "files/scenarios/*.yaml" }}
{{- $names = append $names (base $path | trimSuffix ".yaml") }}
{{- end }}
{{- sortAlpha $names | toJson }}
{{- end }}

{{/*
The scenario as JSON: {"known": bool, "spec": the parsed scenario or {},
"fileName": its name in /mnt/scenario, "from": the value it came from}.
Fails on what no scenario run can use. Call with the root context.
*/}}
{{- define "gatewaylab.scenario.read" -}}
{{- $s := .Values.scenario }}
{{- $given := list }}
{{- range $key := list "name" "file" "existingConfigMap" }}
{{- if get $s $key }}{{ $given = append $given (printf "scenario.%s" $key) }}{{ end }}
{{- end }}
{{- if gt (len $given) 1 }}
{{- fail (printf "scenario: %s are given; give one of scenario.name, scenario.file, scenario.existingConfigMap" (join " and " $given)) }}
{{- end }}
{{- if not $given }}
{{- fail "scenario.enabled=true needs one of scenario.name (a shipped scenario), scenario.file (--set-file scenario.file=my.yaml) or scenario.existingConfigMap" }}
{{- end }}
{{- if $s.existingConfigMap }}
{{- dict "known" false "spec" (dict) "fileName" $s.existingConfigMapKey "from" (printf "ConfigMap %s, key %s" $s.existingConfigMap $s.existingConfigMapKey) | toJson }}
{{- else }}
{{- $text := $s.file }}
{{- $from := "scenario.file" }}
{{- if $s.name }}
{{- $shipped := include "gatewaylab.scenario.shipped" . | fromJsonArray }}
{{- if not (has $s.name $shipped) }}
{{- fail (printf "scenario.name: %q is not a shipped scenario (%s); for your own use --set-file scenario.file=my.yaml" $s.name (join ", " $shipped)) }}
{{- end }}
{{- $text = .Files.Get (printf "files/scenarios/%s.yaml" $s.name) }}
{{- $from = printf "scenario.name=%s" $s.name }}
{{- end }}
{{- if not (trim $text) }}
{{- fail (printf "%s: the scenario is empty" $from) }}
{{- end }}
{{- $spec := fromYaml $text }}
{{- if hasKey $spec "Error" }}
{{- fail (printf "%s: not a YAML mapping: %s" $from (get $spec "Error")) }}
{{- end }}
{{- $stem := default "scenario" $s.name }}
{{- if hasKey $spec "name" }}
{{- if not (regexMatch "^[a-z0-9][a-z0-9-]{0,63}$" (toString $spec.name)) }}
{{- fail (printf "%s: name: %q is not a scenario name ([a-z0-9-], at most 64)" $from (toString $spec.name)) }}
{{- end }}
{{- $stem = $spec.name }}
{{- end }}
{{- dict "known" true "spec" $spec "fileName" (printf "%s.json" $stem) "from" $from | toJson }}
{{- end }}
{{- end }}

{{/* The scenario's backend names: its `backends`, else the runner's default three. Call with the read scenario. */}}
{{- define "gatewaylab.scenario.backends" -}}
{{- $backends := list "server1" "server2" "server3" }}
{{- if and .known (hasKey .spec "backends") }}
{{- if not (kindIs "slice" .spec.backends) }}
{{- fail (printf "%s: backends: a list of names, e.g. [server1, server2, server3]" .from) }}
{{- end }}
{{- $backends = .spec.backends }}
{{- end }}
{{- toJson $backends }}
{{- end }}

{{/* The stages' total length in whole seconds (0 when unknown). Call with the read scenario. */}}
{{- define "gatewaylab.scenario.seconds" -}}
{{- $total := 0 }}
{{- if .known }}
{{- $load := .spec.load }}
{{- if and (kindIs "map" $load) (kindIs "slice" $load.stages) }}
{{- range $load.stages }}
{{- if kindIs "map" . }}{{ $total = add $total (include "gatewaylab.seconds" (toString (.duration | default "0s"))) }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The gateway settings the scenario runs with: its `gateway:` section with the
chosen variant's over it ({} when unknown). Call with the root context.
*/}}
{{- define "gatewaylab.scenario.gatewaySettings" -}}
{{- $settings := dict }}
{{- if .Values.scenario.enabled }}
{{- $r := include "gatewaylab.scenario.read" . | fromJson }}
{{- if $r.known }}
{{- if kindIs "map" $r.spec.gateway }}{{ $settings = deepCopy $r.spec.gateway }}{{ end }}
{{- range ($r.spec.variants | default list) }}
{{- if and (kindIs "map" .) (eq (toString .name) $.Values.scenario.variant) (kindIs "map" .gateway) }}
{{- $settings = mustMergeOverwrite $settings (deepCopy .gateway) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $settings }}
{{- end }}

{{/* Combinations a scenario run cannot work with; fails with the value to change. */}}
{{- define "gatewaylab.scenario.validate" -}}
{{- $v := .Values }}
{{- if $v.scenario.enabled }}
{{- if not $v.locust.enabled }}
{{- fail "scenario.enabled=true needs locust.enabled=true: the scenario runs as the Locust Job" }}
{{- end }}
{{- if $v.locust.distributed.enabled }}
{{- fail "scenario.enabled=true cannot run with locust.distributed.enabled=true: the runner drives one Locust process (set locust.distributed.enabled=false)" }}
{{- end }}
{{- if ne $v.gateway.backends.mode "static" }}
{{- fail (printf "scenario.enabled=true needs gateway.backends.mode=static (not %s): the gateway must know each backend pod by the scenario's name for its per-backend figures" $v.gateway.backends.mode) }}
{{- end }}
{{- if gt (int $v.gateway.replicaCount) 1 }}
{{- fail "scenario.enabled=true needs gateway.replicaCount=1: the runner samples the gateway's /metrics through its Service, and several replicas would answer in turn" }}
{{- end }}
{{- $r := include "gatewaylab.scenario.read" . | fromJson }}
{{- if $r.known }}
{{- $from := $r.from }}
{{- $backends := include "gatewaylab.scenario.backends" $r | fromJsonArray }}
{{- if gt (len $backends) (int $v.backend.replicaCount) }}
{{- fail (printf "%s: backends: %d backends (%s) but backend.replicaCount is %d; raise backend.replicaCount" $from (len $backends) (join ", " $backends) (int $v.backend.replicaCount)) }}
{{- end }}
{{- range $i, $name := $backends }}
{{- if not (regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" (toString $name)) }}
{{- fail (printf "%s: backends[%d]: %q cannot name a backend in the gateway's config" $from $i (toString $name)) }}
{{- end }}
{{- end }}
{{- range $i := until (int $v.backend.replicaCount) }}
{{- if and (ge $i (len $backends)) (has (printf "server%d" (add1 $i)) $backends) }}
{{- fail (printf "%s: backends: server%d is the name of backend pod %d, which the scenario does not list; name the scenario's backends otherwise or set backend.replicaCount=%d" $from (add1 $i) $i (len $backends)) }}
{{- end }}
{{- end }}
{{- range $i, $f := ($r.spec.faults | default list) }}
{{- if and (kindIs "map" $f) (has (toString $f.action) (list "kill" "restart")) }}
{{- fail (printf "%s: faults[%d].action: %q works in local runs only (in Kubernetes use set/clear, e.g. mode refuse with a duration)" $from $i (toString $f.action)) }}
{{- end }}
{{- end }}
{{- $variants := list }}
{{- range ($r.spec.variants | default list) }}{{ if kindIs "map" . }}{{ $variants = append $variants (toString .name) }}{{ end }}{{ end }}
{{- if and $variants (not $v.scenario.variant) }}
{{- fail (printf "scenario.variant: %s has variants (%s); an install runs one, since the gateway's settings are rendered into its config: set scenario.variant" $from (join ", " $variants)) }}
{{- end }}
{{- if and $v.scenario.variant (not (has $v.scenario.variant $variants)) }}
{{- fail (printf "scenario.variant: %q is not a variant of %s (%s)" $v.scenario.variant $from (ternary "it has none" (join ", " $variants) (not $variants))) }}
{{- end }}
{{- $settings := include "gatewaylab.scenario.gatewaySettings" . | fromJson }}
{{- range $path := list "listen" "servers" "state_file" "admin.token" "admin.token_file" "admin.listen" "discovery.dns_name" }}
{{- $keys := splitList "." $path }}
{{- $node := $settings }}
{{- range $i, $key := $keys }}
{{- if and (kindIs "map" $node) (hasKey $node $key) }}{{ $node = get $node $key }}{{ else }}{{ $node = "<absent>" }}{{ end }}
{{- end }}
{{- if ne (toString $node) "<absent>" }}
{{- fail (printf "%s: gateway.%s is set by the chart; leave it out of the scenario" $from $path) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The ConfigMap keys of the runner package and the path each has below /mnt/runner: [{key, path}]. */}}
{{- define "gatewaylab.scenario.runnerFiles" -}}
{{- $files := list }}
{{- range $path, $_ := .Files.Glob "files/scenario/**" }}
{{- $rel := trimPrefix "files/scenario/" $path }}
{{- if not (regexMatch "(^|/)(tests?|__pycache__)/|\\.pyc$" $rel) }}
{{- $files = append $files (dict "key" (replace "/" "__" $rel) "path" (printf "scenario/%s" $rel) "file" $path) }}
{{- end }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{/* The runner's arguments after `--` in the Job (python -m scenario ...). */}}
{{- define "gatewaylab.scenario.args" -}}
{{- $r := include "gatewaylab.scenario.read" . | fromJson }}
{{- $urls := list }}
{{- $servers := include "gatewaylab.backend.servers" . | fromYamlArray }}
{{- $count := ternary (len (include "gatewaylab.scenario.backends" $r | fromJsonArray)) (len $servers) $r.known }}
{{- range $i, $server := $servers }}
{{- if lt $i $count }}{{ $urls = append $urls $server.url }}{{ end }}
{{- end -}}
- run
- /mnt/scenario/{{ $r.fileName }}
- --target
- kubernetes
- --gateway-url
- {{ include "gatewaylab.gateway.url" . }}
- --backend-urls
- {{ join "," $urls }}
- --token-file
- /mnt/admin/token
- --out
- /reports
{{- with .Values.scenario.variant }}
- --variant
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The scenario Job's extra volumes: the runner at /mnt/runner, the scenario at /mnt/scenario, the admin token at /mnt/admin. */}}
{{- define "gatewaylab.scenario.volumes" -}}
{{- $r := include "gatewaylab.scenario.read" . | fromJson -}}
- name: scenario-runner
  configMap:
    name: {{ include "gatewaylab.scenario.fullname" . }}
    items:
      {{- range (include "gatewaylab.scenario.runnerFiles" . | fromJsonArray) }}
      - key: {{ .key }}
        path: {{ .path }}
      {{- end }}
- name: scenario
  configMap:
    name: {{ default (include "gatewaylab.scenario.fullname" .) .Values.scenario.existingConfigMap }}
    items:
      - key: {{ $r.fileName }}
        path: {{ $r.fileName }}
- name: admin-token
  secret:
    secretName: {{ include "gatewaylab.adminSecretName" . }}
    items:
      - key: {{ .Values.admin.secretKey }}
        path: token
{{- end }}
{{- define "gatewaylab.scenario.volumeMounts" -}}
- name: scenario-runner
  mountPath: /mnt/runner
  readOnly: true
- name: scenario
  mountPath: /mnt/scenario
  readOnly: true
- name: admin-token
  mountPath: /mnt/admin
  readOnly: true
{{- end }}
