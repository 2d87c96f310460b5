{{/* The base name of every object: the release name, or release-nicpool. */}}
{{- define "nicpool.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "nicpool.operatorName" -}}{{ include "nicpool.fullname" . }}-operator{{- end -}}
{{- define "nicpool.agentName" -}}{{ include "nicpool.fullname" . }}-agent{{- end -}}

{{/* Labels on every object. */}}
{{- define "nicpool.labels" -}}
app.kubernetes.io/part-of: nicpool
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "nicpool.operatorSelector" -}}
app.kubernetes.io/name: nicpool-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nicpool.agentSelector" -}}
app.kubernetes.io/name: nicpool-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nicpool.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}

{{/*
The operator's --auth-mode: explicit azure.authMode, else workload identity or
managed identity when their client ID is set, else the SDK's default chain.
*/}}
{{- define "nicpool.authMode" -}}
{{- if and .Values.workloadIdentity.clientID .Values.managedIdentity.clientID -}}
{{- fail "set workloadIdentity.clientID or managedIdentity.clientID, not both: the operator uses one Azure identity" -}}
{{- end -}}
{{- if .Values.azure.authMode -}}
{{- .Values.azure.authMode -}}
{{- else if .Values.workloadIdentity.clientID -}}
workload-identity
{{- else if .Values.managedIdentity.clientID -}}
managed-identity
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* The ServiceAccount name that the admission policy recognises as the agent. */}}
{{- define "nicpool.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "nicpool.agentName" . }}
{{- end -}}

{{/*
The ClusterRole document of a controller-gen role file, which may also hold
namespaced Roles; rendered as YAML for fromYaml.
*/}}
{{- define "nicpool.clusterRole" -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" . -1 -}}
{{- $obj := fromYaml $doc -}}
{{- if eq (get $obj "kind") "ClusterRole" -}}
{{- toYaml $obj -}}
{{- end -}}
{{- end -}}
{{- end -}}
