{{/*
Helpers of the customer-instance chart. The chart uses only the template functions that
tools/chart-render supports (listed in README.md); the provisioner's C++ renderer
(provisioner/render/src/render.cpp) produces the same objects, which the parity test checks.
*/}}

{{/* customer.id, validated: every object name is derived from it. */}}
{{- define "customer-instance.id" -}}
{{- $id := .Values.customer.id | toString -}}
{{- if not $id -}}
{{- fail "customer.id is required (a DNS-1123 label, e.g. abc123)" -}}
{{- end -}}
{{- if gt (len $id) 34 -}}
{{- fail (printf "customer.id %q is longer than 34 characters (customer-{id}-postgres must fit Kubernetes' 52-character StatefulSet name limit)" $id) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $id) -}}
{{- fail (printf "customer.id %q is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)" $id) -}}
{{- end -}}
{{- $id -}}
{{- end -}}

{{/* customer-{id}: the release, namespace and object-name prefix. */}}
{{- define "customer-instance.fullname" -}}
{{- printf "customer-%s" (include "customer-instance.id" .) -}}
{{- end -}}

{{- define "customer-instance.namespace" -}}
{{- include "customer-instance.fullname" . -}}
{{- end -}}

{{- define "customer-instance.host" -}}
{{- printf "%s.%s" (include "customer-instance.id" .) .Values.domain.base -}}
{{- end -}}

{{/* Labels every object carries. Argument: (dict "root" $ "component" "api"); component may be "". */}}
{{- define "customer-instance.labels" -}}
{{- $root := .root -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ include "customer-instance.fullname" $root }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
app.kubernetes.io/part-of: iotistic
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
billing/customer: {{ include "customer-instance.id" $root }}
{{- end -}}

{{/* The subset of the labels that selectors use; stable across upgrades. */}}
{{- define "customer-instance.selectorLabels" -}}
{{- $root := .root -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ include "customer-instance.fullname" $root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The pod-level half of the Pod Security "restricted" profile (the Namespace enforces it).
Argument: (dict "user" <uid> "group" <gid>), the image's own non-root user. fsGroup: the volumes
(PostgreSQL's claim, the emptyDirs, ConfigMaps) belong to that group, so the user can write what
it must; OnRootMismatch: a claim whose root already has the group is not walked at every start.
*/}}
{{- define "customer-instance.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .user }}
runAsGroup: {{ .group }}
fsGroup: {{ .group }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The container-level half: no privilege escalation, every capability dropped. A container that
listens below port 1024 gets NET_BIND_SERVICE back, the one capability the profile allows to add.
Argument: (dict "readOnly" <bool> "ports" (list <its containerPorts>)).
*/}}
{{- define "customer-instance.containerSecurityContext" -}}
{{- $privilegedPort := false -}}
{{- range .ports -}}
{{- if lt (int .) 1024 -}}
{{- $privilegedPort = true -}}
{{- end -}}
{{- end -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .readOnly }}
capabilities:
  drop:
    - ALL
  {{- if $privilegedPort }}
  add:
    - NET_BIND_SERVICE
  {{- end }}
{{- end -}}

{{/*
An image reference, repository:tag; an empty tag is the chart's appVersion (the platform's own
images are versioned with the chart). Argument: (dict "root" $ "image" .Values.api.image).
*/}}
{{- define "customer-instance.image" -}}
{{- printf "%s:%s" (.image.repository | toString) (.image.tag | default .root.Chart.AppVersion | toString) -}}
{{- end -}}

{{/*
postgres.password if given; else, on a helm upgrade, the one in the release's existing Secret
(lookup; it finds nothing under helm template, --dry-run and chart-render); else 24 random letters
and digits. Included once per render (secret.yaml), as every randAlphaNum differs.
*/}}
{{- define "customer-instance.postgresPassword" -}}
{{- $given := .Values.postgres.password | default "" | toString -}}
{{- if $given -}}
{{- $given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" (include "customer-instance.namespace" .) (printf "%s-secrets" (include "customer-instance.fullname" .)) -}}
{{- if and $existing $existing.data (hasKey $existing.data "POSTGRES_PASSWORD") -}}
{{- index $existing.data "POSTGRES_PASSWORD" | b64dec -}}
{{- else -}}
{{- randAlphaNum 24 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Every value check that is not about customer.id. Rendered (to nothing) from secret.yaml,
which every release has. The C++ renderer makes the same checks (provisioner/render/src/spec.cpp).
*/}}
{{- define "customer-instance.validate" -}}
{{- $v := .Values -}}
{{- $email := $v.customer.email | default "" | toString -}}
{{- if and $email (not (regexMatch "^[^@[:space:]]+@[^@[:space:]]+$" $email)) -}}
{{- fail (printf "customer.email %q is not an email address (it is optional: leave it empty)" $email) -}}
{{- end -}}
{{- if not ($v.license.key | toString) -}}
{{- fail "license.key is required (the customer's JWT license key)" -}}
{{- end -}}
{{- $base := $v.domain.base | toString -}}
{{- if or (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" $base)) (gt (len $base) 200) -}}
{{- fail (printf "domain.base %q is not a DNS-1123 subdomain of at most 200 characters (e.g. iotistic.cloud)" $base) -}}
{{- end -}}
{{- $password := $v.postgres.password | default "" | toString -}}
{{- if and $password (not (regexMatch "^[A-Za-z0-9._~-]{8,}$" $password)) -}}
{{- fail "postgres.password must be at least 8 characters from A-Z a-z 0-9 . _ ~ - (it is embedded in DATABASE_URL); leave it empty to have one generated" -}}
{{- end -}}
{{- range $component := list "postgres" "mosquitto" "api" "dashboard" "exporter" -}}
{{- $image := index $v $component "image" -}}
{{- if not (kindIs "map" $image) -}}
{{- fail (printf "%s.image must be a map of repository, tag (empty: the chart's appVersion) and pullPolicy" $component) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._-]*)*$" ($image.repository | default "" | toString)) -}}
{{- fail (printf "%s.image.repository %q is not an image repository (lowercase, e.g. registry.example.com/iotistic/api)" $component ($image.repository | default "" | toString)) -}}
{{- end -}}
{{- if not (regexMatch "^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$" ($image.tag | default "" | toString)) -}}
{{- fail (printf "%s.image.tag %q is not an image tag (letters, digits, '_', '.', '-'; empty: the chart's appVersion)" $component ($image.tag | default "" | toString)) -}}
{{- end -}}
{{- if not (regexMatch "^(Always|IfNotPresent|Never)$" ($image.pullPolicy | default "" | toString)) -}}
{{- fail (printf "%s.image.pullPolicy %q is not Always, IfNotPresent or Never" $component ($image.pullPolicy | default "" | toString)) -}}
{{- end -}}
{{- end -}}
{{- if not (regexMatch "^[a-z_][a-z0-9_]{0,62}$" ($v.postgres.username | toString)) -}}
{{- fail (printf "postgres.username %q must be a lowercase SQL identifier" ($v.postgres.username | toString)) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z_][a-z0-9_]{0,62}$" ($v.postgres.database | toString)) -}}
{{- fail (printf "postgres.database %q must be a lowercase SQL identifier" ($v.postgres.database | toString)) -}}
{{- end -}}
{{- if not (regexMatch "^([0-9]+(ms|s|m|h))+$" ($v.exporter.sampleInterval | toString)) -}}
{{- fail (printf "exporter.sampleInterval %q is not a duration such as 15s or 1m30s" ($v.exporter.sampleInterval | toString)) -}}
{{- end -}}
{{- if $v.exporter.basicAuth.password -}}
{{- if not (regexMatch "^[^:[:space:]]+$" ($v.exporter.basicAuth.username | toString)) -}}
{{- fail "exporter.basicAuth.username is required with a password, without ':' or spaces" -}}
{{- end -}}
{{- end -}}
{{- range $cidr := $v.networkPolicy.apiServerCidrs -}}
{{- if not (regexMatch "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$" ($cidr | toString)) -}}
{{- fail (printf "networkPolicy.apiServerCidrs: %q is not an IPv4 CIDR (e.g. 10.0.0.0/8)" ($cidr | toString)) -}}
{{- end -}}
{{- end -}}
{{- range $role := list "exporter" "device" -}}
{{- $user := index $v.mosquitto.auth $role -}}
{{- $path := printf "mosquitto.auth.%s" $role -}}
{{- if not (regexMatch "^[A-Za-z0-9._-]{1,64}$" ($user.username | default "" | toString)) -}}
{{- fail (printf "%s.username: must be 1 to 64 characters from A-Z a-z 0-9 . _ -" $path) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9._~-]{16,}$" ($user.password | default "" | toString)) -}}
{{- fail (printf "%s.password: is required, at least 16 characters from A-Z a-z 0-9 . _ ~ -, with passwordHash (its Mosquitto $7$ hash; `provisioner render` generates both)" $path) -}}
{{- end -}}
{{- if not (regexMatch "^\\$7\\$[1-9][0-9]{0,8}\\$[A-Za-z0-9+/]{16}\\$[A-Za-z0-9+/]{86}==$" ($user.passwordHash | default "" | toString)) -}}
{{- fail (printf "%s.passwordHash: is required with the password, a Mosquitto PBKDF2-SHA512 hash ($7$iterations$salt$hash, what mosquitto_passwd writes after \"user:\")" $path) -}}
{{- end -}}
{{- end -}}
{{- if eq ($v.mosquitto.auth.exporter.username | toString) ($v.mosquitto.auth.device.username | toString) -}}
{{- fail "mosquitto.auth.device.username: must differ from mosquitto.auth.exporter.username" -}}
{{- end -}}
{{- if and $v.ingress.enabled $v.ingress.exposeMetrics (not $v.exporter.basicAuth.password) -}}
{{- fail "exporter.basicAuth.password is required when ingress.exposeMetrics is true: /metrics is never public without auth" -}}
{{- end -}}
{{- end -}}

{{/* The billing exporter's MQTT client id, reserved to its broker user by the client-id guard. */}}
{{- define "customer-instance.exporterClientId" -}}
{{- printf "billing-exporter-%s" (include "customer-instance.id" .) -}}
{{- end -}}

{{/* Mosquitto's password file: one "user:$7$..." line per broker user. */}}
{{- define "customer-instance.mosquittoPasswords" -}}
{{- $auth := .Values.mosquitto.auth -}}
{{- printf "%s:%s\n%s:%s\n" ($auth.exporter.username | toString) ($auth.exporter.passwordHash | toString) ($auth.device.username | toString) ($auth.device.passwordHash | toString) -}}
{{- end -}}

{{/*
Mosquitto's ACL: the exporter reads the broker's totals ($SYS/broker/#) and, in plugin mode, the
billing plugin's snapshots ($SYS/billing/#), in subscription mode every topic (its subscription to
#); it publishes nothing. The devices read and write every topic but $SYS, which '#' never matches.
*/}}
{{- define "customer-instance.mosquittoAcl" -}}
{{- $auth := .Values.mosquitto.auth -}}
{{- $reads := "topic read #" -}}
{{- if eq (.Values.mosquitto.metering.source | toString) "plugin" -}}
{{- $reads = "topic read $SYS/billing/#" -}}
{{- end -}}
{{- printf "# The billing exporter: reads the broker's totals and its usage, publishes nothing.\nuser %s\n%s\ntopic read $SYS/broker/#\n\n# The tenant's devices and API: every topic but $SYS.\nuser %s\ntopic readwrite #\n" ($auth.exporter.username | toString) $reads ($auth.device.username | toString) -}}
{{- end -}}
