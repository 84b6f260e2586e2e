{{/* The chart's name, and the name of every object it makes: the release name, with the chart's
name appended unless the release name already holds it. */}}
{{- define "rego-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rego-injector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rego-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rego-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rego-injector.labels" -}}
{{ include "rego-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "rego-injector.serviceAccountName" -}}
{{- default (include "rego-injector.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "rego-injector.secretName" -}}
{{- default (printf "%s-tls" (include "rego-injector.fullname" .)) .Values.certificates.secretName -}}
{{- end -}}

{{- define "rego-injector.certMode" -}}
{{- $mode := .Values.certificates.mode -}}
{{- if not (has $mode (list "self-managed" "cert-manager" "user-supplied")) -}}
{{- fail (printf "certificates.mode %q: want self-managed, cert-manager or user-supplied" $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{- define "rego-injector.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* GOMEMLIMIT: "auto" is goMemLimitPercent of resources.limits.memory, in bytes (empty without a
memory limit), rounded down to whole MiB; any other value is used as it is. */}}
{{- define "rego-injector.goMemLimit" -}}
{{- $v := toString .Values.goMemLimit -}}
{{- if eq $v "auto" -}}
{{- $limit := "" -}}
{{- with .Values.resources -}}{{- with .limits -}}{{- $limit = toString (default "" .memory) -}}{{- end -}}{{- end -}}
{{- if $limit -}}
{{- $num := regexFind "^[0-9]+" $limit -}}
{{- $unit := trimPrefix $num $limit -}}
{{- $scale := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if or (not $num) (not (hasKey $scale $unit)) -}}
{{- fail (printf "goMemLimit auto: cannot read resources.limits.memory %q; give goMemLimit as a Go value (400MiB)" $limit) -}}
{{- end -}}
{{- $bytes := div (mul (atoi $num) (get $scale $unit) (int .Values.goMemLimitPercent)) 100 -}}
{{- printf "%dMiB" (div $bytes 1048576) -}}
{{- end -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/* The clientConfig of a webhook entry; the argument is (list $ "/path"). */}}
{{- define "rego-injector.clientConfig" -}}
{{- $ := index . 0 -}}
{{- $path := index . 1 -}}
clientConfig:
{{- if $.Values.webhooks.url }}
  url: {{ printf "%s%s" (trimSuffix "/" $.Values.webhooks.url) $path | quote }}
{{- else }}
  service:
    name: {{ include "rego-injector.fullname" $ }}
    namespace: {{ $.Release.Namespace }}
    path: {{ $path }}
    port: {{ $.Values.service.port }}
{{- end }}
{{- if and (eq (include "rego-injector.certMode" $) "user-supplied") $.Values.certificates.userSupplied.caBundle }}
  caBundle: {{ $.Values.certificates.userSupplied.caBundle | b64enc }}
{{- end }}
{{- end -}}

{{/* The namespaceSelector of a webhook entry: the entry's own expressions, then the namespaces
never sent (the release's own among them), then the user's. The argument is (list $ expressions). */}}
{{- define "rego-injector.namespaceSelector" -}}
{{- $ := index . 0 -}}
{{- $excluded := uniq (append $.Values.webhooks.excludedNamespaces $.Release.Namespace) -}}
{{- $expressions := concat (index . 1) (list (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" $excluded)) $.Values.webhooks.namespaceSelector.matchExpressions -}}
namespaceSelector:
  matchExpressions:
{{- range $expressions }}
    - {{ toJson . }}
{{- end }}
{{- end -}}

{{/* The matchConditions of the mutating entries (docs/install.md#what-the-match-conditions-skip). */}}
{{- define "rego-injector.matchConditions" -}}
{{- $mc := .Values.webhooks.matchConditions -}}
{{- $conditions := list -}}
{{- if $mc.skipHostNetwork -}}
{{- $conditions = append $conditions (dict "name" "not-host-network" "expression" "!has(object.spec.hostNetwork) || !object.spec.hostNetwork") -}}
{{- end -}}
{{- if and $mc.skipOptedOut $mc.podKeys -}}
{{- /* The first switch with a valid value ("true" or "false") decides: labels in podKeys order,
then annotations; opted out when it is "false". Built inside out as nested conditionals. */ -}}
{{- $switches := list -}}
{{- range $kind := list "labels" "annotations" -}}
{{- range $key := $mc.podKeys -}}
{{- $switches = append $switches (dict "kind" $kind "key" $key) -}}
{{- end -}}
{{- end -}}
{{- $expr := "false" -}}
{{- range reverse $switches -}}
{{- $ref := printf "object.metadata.%s[%s]" .kind (squote .key) -}}
{{- $valid := printf "has(object.metadata.%s) && %s in object.metadata.%s && %s in ['true', 'false']" .kind (squote .key) .kind $ref -}}
{{- $expr = printf "(%s) ? %s == 'false' :\n  %s" $valid $ref $expr -}}
{{- end -}}
{{- $conditions = append $conditions (dict "name" "not-opted-out" "expression" (printf "!(\n  %s)" $expr)) -}}
{{- end -}}
{{- $conditions = concat $conditions $mc.extra -}}
{{- if $conditions -}}
matchConditions:
{{- range $conditions }}
  - name: {{ .name }}
    expression: |-
{{ .expression | indent 6 }}
{{- end }}
{{- end }}
{{- end -}}
