{{- define "portcullis.fullname" -}}
{{- printf "%s-portcullis" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "portcullis.labels" -}}
app.kubernetes.io/name: portcullis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "portcullis.selector" -}}
app.kubernetes.io/name: portcullis
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .target }}
{{- end -}}

{{/* The four targets and their gRPC ports (the gateway's is its HTTP port). */}}
{{- define "portcullis.targets" -}}
gateway: {{ .Values.gateway.port }}
authn: {{ .Values.authn.port }}
authz: {{ .Values.authz.port }}
signer: {{ .Values.signer.port }}
{{- end -}}
