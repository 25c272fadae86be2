{{/*
Names. Kubernetes names are limited to 63 characters (DNS-1123 labels, for Services), so every
name is cut there.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name: fullnameOverride, else the release name when it already
contains the chart name, else "<release>-<name>". */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "sluice.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", cut to 63 characters. Call with (list $ "suffix"). */}}
{{- define "sluice.suffixed" -}}
{{- $top := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $full := include "sluice.fullname" $top -}}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len $suffix)))) $suffix | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end -}}

{{/* Selector labels of the control plane pods. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{/* Selector labels of the bundled (trial) Redis pod. */}}
{{- define "sluice.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{/* The control plane's ServiceAccount name. */}}
{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The control plane image. */}}
{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The image injected as sidecar (sidecar.image fields fall back to image, then appVersion). */}}
{{- define "sluice.sidecarImage" -}}
{{- $repo := default .Values.image.repository .Values.sidecar.image.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.sidecar.image.tag -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* Name of the Secret holding the control plane's serving certificate (tls.crt, tls.key, ca.crt),
used by both TLS listeners: the webhook (called by the API server) and gRPC (called by sidecars). */}}
{{- define "sluice.tlsSecretName" -}}
{{- include "sluice.suffixed" (list . "tls") -}}
{{- end -}}

{{/* Name of the cert-manager Certificate of the serving certificate. */}}
{{- define "sluice.servingCertificateName" -}}
{{- include "sluice.suffixed" (list . "serving") -}}
{{- end -}}

{{/* DNS names of the control plane Service (the serving certificate's SANs): the API server calls
<svc>.<ns>.svc, sidecars dial <svc>.<ns>.svc:<grpc>. */}}
{{- define "sluice.serviceDnsNames" -}}
{{- $svc := include "sluice.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson -}}
{{- end -}}

{{/* Name of the bundled Redis Deployment and Service. */}}
{{- define "sluice.redisName" -}}
{{- include "sluice.suffixed" (list . "redis") -}}
{{- end -}}

{{/* Fails the render when more than one Redis source is configured. */}}
{{- define "sluice.validateRedis" -}}
{{- $n := 0 -}}
{{- if .Values.redis.url }}{{ $n = add1 $n }}{{ end -}}
{{- if .Values.redis.existingSecret.name }}{{ $n = add1 $n }}{{ end -}}
{{- if .Values.redis.bundled.enabled }}{{ $n = add1 $n }}{{ end -}}
{{- if gt (int $n) 1 -}}
{{- fail "redis: set at most one of redis.url, redis.existingSecret.name and redis.bundled.enabled" -}}
{{- end -}}
{{- end -}}
