{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "pingone-aic-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name, prefixed to the chart name unless it
already contains it.
*/}}
{{- define "pingone-aic-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "pingone-aic-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries.
*/}}
{{- define "pingone-aic-operator.labels" -}}
helm.sh/chart: {{ include "pingone-aic-operator.chart" . }}
{{ include "pingone-aic-operator.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: pingone-aic-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator's pods. Never change them: a Deployment's selector is immutable.
*/}}
{{- define "pingone-aic-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pingone-aic-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "pingone-aic-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pingone-aic-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Lease used for leader election, in the release namespace.
*/}}
{{- define "pingone-aic-operator.leaseName" -}}
{{- default (include "pingone-aic-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The operator image: repository@digest when a digest is set, else repository:tag (tag defaults
to the chart's appVersion).
*/}}
{{- define "pingone-aic-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's permissions on its own resources and on the Secrets they reference; the same
rules whether granted cluster-wide (ClusterRole) or per watched namespace (Role).
- get/list/watch: the controllers' watches; patch/update: finalizers and annotations.
- promotions create: the automatic promotion policy creates Promotions.
- the status subresources; pingoneintegrations/finalizers update: Promotions carry an
  ownerReference with blockOwnerDeletion to their PingOneIntegration.
- secrets: read, plus create/patch for the one Secret per integration that keeps its last
  verified credentials (`<integration>-verified`, owned by the integration), so a credential AIC
  rejects can be rolled back. RBAC cannot limit create to a name; the ValidatingAdmissionPolicy
  in secret-write-policy.yaml does: the operator's account writes no other Secret.
- events.k8s.io events: Kubernetes Events for what the operator did.
*/}}
{{- define "pingone-aic-operator.rules" -}}
- apiGroups: ["pingone-aic.io"]
  resources: ["tenantenvironments", "pingoneintegrations"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["pingone-aic.io"]
  resources: ["promotions"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["pingone-aic.io"]
  resources: ["tenantenvironments/status", "pingoneintegrations/status", "promotions/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["pingone-aic.io"]
  resources: ["pingoneintegrations/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
