{{- define "ludus.name" -}}ludus-operator{{- end -}}

{{- define "ludus.labels" -}}
app.kubernetes.io/name: ludus
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "ludus.selector" -}}
app.kubernetes.io/name: ludus
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The rules the operator needs in a namespace it watches: only the verbs it uses. */}}
{{- define "ludus.namespacedRules" -}}
- apiGroups: [ludus.dev]
  resources: [trainingjobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [ludus.dev]
  resources: [trainingjobs/status]
  verbs: [patch]
- apiGroups: [ludus.dev]
  resources: [sweeps]
  verbs: [get, list, watch]
- apiGroups: [ludus.dev]
  resources: [sweeps/status]
  verbs: [patch]
- apiGroups: [ludus.dev]
  resources: [continuoustrainings]
  verbs: [get, list, watch]
- apiGroups: [ludus.dev]
  resources: [continuoustrainings/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [create]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [scheduling.volcano.sh, scheduling.x-k8s.io]
  resources: [podgroups]
  verbs: [create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [create]
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads/status]
  verbs: [patch]
- apiGroups: [kueue.x-k8s.io]
  resources: [localqueues]
  verbs: [get]
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [list, watch, patch, get]
{{- end -}}

{{/* Who may read the trainers' metrics through each job's NetworkPolicy: this release's operator pods, and
the pods networkPolicy.metricsFrom selects. */}}
{{- define "ludus.metricsFrom" -}}
{{- $operator := dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace)) "podSelector" (dict "matchLabels" (include "ludus.selector" . | fromYaml)) -}}
{{- $prometheus := dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .Values.networkPolicy.monitoringNamespace)) "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "prometheus")) -}}
{{- concat (list $operator $prometheus) (.Values.networkPolicy.metricsFrom | default list) | toJson -}}
{{- end -}}
