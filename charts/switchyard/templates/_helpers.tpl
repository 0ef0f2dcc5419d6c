{{/* Labels on every object: the install's own (as kustomize writes them) and Helm's. */}}
{{- define "switchyard.labels" -}}
app.kubernetes.io/part-of: switchyard
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* An image of this release: (list $ "webhook") */}}
{{- define "switchyard.image" -}}
{{- $root := index . 0 -}}
{{- printf "%s/%s:%s" $root.Values.images.repository (index . 1) ($root.Values.images.tag | default $root.Chart.AppVersion) -}}
{{- end }}

{{- define "switchyard.pullPolicy" -}}
{{- with .Values.images.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}
