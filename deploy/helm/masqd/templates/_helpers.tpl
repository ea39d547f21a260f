{{/* The labels of every object: the same as deploy/kubernetes's. */}}
{{- define "masqd.labels" -}}
app.kubernetes.io/name: masqd
{{- end }}

{{- define "masqd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default (printf "v%s" .Chart.AppVersion) }}
{{- end }}
