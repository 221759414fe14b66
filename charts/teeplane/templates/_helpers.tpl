{{/* The namespace every object lives in; operator-rbac.yaml (plain YAML) names it. */}}
{{- define "teeplane.namespace" -}}
{{- if ne .Release.Namespace "teeplane-system" -}}
{{- fail (printf "install TEEPlane into the namespace teeplane-system (helm -n teeplane-system), not %q: templates/operator-rbac.yaml names it" .Release.Namespace) -}}
{{- end -}}
teeplane-system
{{- end -}}

{{/* Labels on every object; "teeplane.component" gives the component. */}}
{{- define "teeplane.labels" -}}
app.kubernetes.io/name: teeplane
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Selector labels of a component's pods. */}}
{{- define "teeplane.selector" -}}
app.kubernetes.io/name: teeplane
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A value that must be set, failing with what it is and where it goes. */}}
{{- define "teeplane.required" -}}
{{- required (printf "%s is required: %s" .name .why) .value -}}
{{- end -}}

{{/* The TEEPlane image, repository@sha256:... */}}
{{- define "teeplane.image" -}}
{{- $digest := include "teeplane.required" (dict "name" "image.digest" "why" "the TEEPlane image is referenced by digest (sha256:<64 hex>) of the image built from the repository's Dockerfile; pass --set image.digest=sha256:..." "value" .Values.image.digest) -}}
{{- printf "%s@%s" .Values.image.repository $digest -}}
{{- end -}}

{{/* http or https, by whether TLS is configured. */}}
{{- define "teeplane.scheme" -}}
{{- ternary "https" "http" (ne .Values.tls.existingSecret "") -}}
{{- end -}}

{{/* Base URLs of the services, as clients in the cluster reach them. */}}
{{- define "teeplane.rasUrl" -}}
{{ include "teeplane.scheme" . }}://teeplane-ras.teeplane-system.svc:{{ .Values.ras.port }}
{{- end -}}
{{- define "teeplane.tksUrl" -}}
{{ include "teeplane.scheme" . }}://teeplane-tks.teeplane-system.svc:{{ .Values.tks.port }}
{{- end -}}
{{- define "teeplane.bgsUrl" -}}
{{ include "teeplane.scheme" . }}://teeplane-bgs.teeplane-system.svc:{{ .Values.bgs.port }}
{{- end -}}

{{/* The etcd endpoints TKS uses: the bundled members, or the given ones. */}}
{{- define "teeplane.etcdEndpoints" -}}
{{- if .Values.etcd.bundled.enabled -}}
{{- $members := list -}}
{{- range $i := until (int .Values.etcd.bundled.replicas) -}}
{{- $members = append $members (printf "teeplane-etcd-%d.teeplane-etcd.teeplane-system.svc:2379" $i) -}}
{{- end -}}
{{- join "," $members -}}
{{- else -}}
{{- include "teeplane.required" (dict "name" "etcd.endpoints" "why" "TKS keeps its keys in etcd; give host:port[,host:port...] of yours, or set etcd.bundled.enabled=true" "value" .Values.etcd.endpoints) -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by every TEEPlane pod: image pull secrets, security context. */}}
{{- define "teeplane.podSpec" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
- name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The TEEPlane container's fixed part: image, security context, writable /tmp, the TLS material. */}}
{{- define "teeplane.container" -}}
image: {{ include "teeplane.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end -}}

{{/* Arguments that make a service serve HTTPS with the TLS Secret (mounted at /etc/teeplane/tls); empty
without TLS, so callers use `with`. */}}
{{- define "teeplane.tlsArgs" -}}
{{- if .Values.tls.existingSecret -}}
- --tls-cert=/etc/teeplane/tls/tls.crt
- --tls-key=/etc/teeplane/tls/tls.key
{{- end -}}
{{- end -}}

{{/* Clients' CA argument with TLS; empty without. */}}
{{- define "teeplane.caArg" -}}
{{- if .Values.tls.existingSecret -}}
- --ca-file=/etc/teeplane/tls/ca.crt
{{- end -}}
{{- end -}}

{{/* Volume mounts every TEEPlane container has: /tmp, and the TLS Secret when set. */}}
{{- define "teeplane.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.existingSecret }}
- name: tls
  mountPath: /etc/teeplane/tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The volumes behind teeplane.volumeMounts. */}}
{{- define "teeplane.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
{{- end }}
{{- end -}}

{{/* A volume from a required existing Secret: name, value (the values path), secret, why. */}}
{{- define "teeplane.secretVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ include "teeplane.required" (dict "name" .value "why" .why "value" .secret) }}
{{- end -}}

{{/* HTTP probes on /healthz (liveness) and /readyz (readiness) of port "http". */}}
{{- define "teeplane.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: http, scheme: {{ include "teeplane.scheme" . | upper }}}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http, scheme: {{ include "teeplane.scheme" . | upper }}}
  periodSeconds: 5
startupProbe:
  httpGet: {path: /readyz, port: http, scheme: {{ include "teeplane.scheme" . | upper }}}
  periodSeconds: 2
  failureThreshold: 60
{{- end -}}

{{/* A ClusterIP Service for a component's "http" port: root, component, port. */}}
{{- define "teeplane.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: teeplane-{{ .component }}
  namespace: {{ include "teeplane.namespace" .root }}
  labels:
    {{- include "teeplane.labels" . | nindent 4 }}
spec:
  selector:
    {{- include "teeplane.selector" . | nindent 4 }}
  ports:
  - name: http
    port: {{ .port }}
    targetPort: http
{{- end -}}

{{/* A PersistentVolumeClaim template "state": persistence (size, storageClass). */}}
{{- define "teeplane.stateClaim" -}}
volumeClaimTemplates:
- metadata:
    name: state
  spec:
    accessModes: [ReadWriteOnce]
    {{- with .storageClass }}
    storageClassName: {{ . }}
    {{- end }}
    resources:
      requests:
        storage: {{ .size }}
{{- end -}}
