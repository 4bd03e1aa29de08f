#!/usr/bin/python3
"""Checks manifests/provisioner/, the provisioner's own Kubernetes objects (Debian's python3 with
python3-jsonschema and python3-yaml; registered with ctest as provisioner_manifests_test).

  provisioner_manifests_test.py PROVISIONER MANIFESTS_DIR SHARED_DIR YAMLLINT [unittest options]

PROVISIONER is the `provisioner` binary (its `render` gives the kinds the provisioner applies),
MANIFESTS_DIR is manifests/provisioner (the chart and the yamllint configuration are found beside
it, in ../charts/customer-instance and ../.yamllint.yaml), SHARED_DIR holds k8s-schemas/
($BILLING_SHARED_DIR overrides it, as for the other provisioner tests), YAMLLINT is yamllint.

What must hold, each a test below: every object validates against the JSON schema of its kind
(validate_manifests.py's lookup); yamllint passes; the ClusterRole grants exactly get/create/patch
on the (apiGroup, resource) of every kind that `provisioner render` produces for a customer with
every optional part on, get on Deployments, StatefulSets and Namespaces, delete on Namespaces
(teardown) and on the (apiGroup, resource) of every object rendered with every optional part on
but not with every optional part off (what the provisioner prunes after an upgrade turns a part
off; the switches are every `enabled` in the chart's values.yaml), and nothing else (no
wildcards, no subresources, no other verbs); the ClusterRoleBinding binds it to the
provisioner's ServiceAccount in iotistic-system; the Deployment runs the contract's command
with the contract's environment (secrets from secretKeyRef, the signing key and the encryption
key of the tenants' secrets each from a read-only Secret volume) as non-root with a read-only root filesystem.
"""
import glob
import os
import re
import subprocess
import sys
import unittest

import yaml

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "render"))
import validate_manifests  # noqa: E402  (tests/provisioner/render/, shared with render_cli_test)

NAMESPACE = "iotistic-system"
NAME = "provisioner"
LABELS = {"app.kubernetes.io/name": "provisioner", "app.kubernetes.io/part-of": "iotistic-platform"}
# The image is versioned like the chart it bakes in (tests/images checks the versions agree).
IMAGE_REPOSITORY = "iotistic/provisioner"
COMMAND = ["provisioner", "serve", "--listen", "0.0.0.0:3000", "--health-listen", "0.0.0.0:3001"]
PORT = 3000
# /healthz and /metrics, on threads of their own: the probes and Prometheus use it, never PORT,
# whose workers slow clients can hold.
HEALTH_PORT = 3001

# A customer as the provisioner renders it (it always renders the Namespace itself).
CUSTOMER_SETS = [
    "customer.id=acme",
    "customer.email=a@b.c",
    "customer.companyName=Acme",
    "license.key=x",
    "domain.base=example.com",
    "postgres.password=p4ssw0rd-test",
    "namespace.create=true",
]

# The customer with every optional part of the chart on, so that every kind is rendered.
# test_render_covers_every_chart_kind fails if the chart gains a kind that these do not render,
# test_full_featured_turns_every_switch_on if values.yaml gains a switch that these leave off.
FULL_FEATURED_SETS = CUSTOMER_SETS + [
    "resourceQuota.enabled=true",
    "networkPolicy.enabled=true",
    "ingress.enabled=true",
    "ingress.tls.enabled=true",
    "ingress.exposeMetrics=true",
    "exporter.basicAuth.password=m3trics-pw",
    "exporter.serviceMonitor.enabled=true",
]

# kind -> resource (the lowercase plural in the API path); the API group comes from the rendered
# apiVersion. A kind the chart renders that is missing here fails the test: add it here and a
# rule for it in manifests/provisioner/20-rbac.yaml.
KIND_RESOURCES = {
    "Namespace": "namespaces",
    "ResourceQuota": "resourcequotas",
    "NetworkPolicy": "networkpolicies",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Service": "services",
    "StatefulSet": "statefulsets",
    "Deployment": "deployments",
    "Ingress": "ingresses",
    "ServiceMonitor": "servicemonitors",
}
APPLY_VERBS = {"get", "create", "patch"}  # server-side apply (PATCH), create through apply
READ = {("apps", "deployments"), ("apps", "statefulsets"), ("", "namespaces")}  # get
DELETE = {("", "namespaces")}  # teardown; the prunable kinds are derived (prunable_pairs)

# The contract's environment.
SECRET_ENV = {
    "PROVISIONER_ADMIN_TOKEN": ("provisioner-secrets", "admin-token"),
    "DATABASE_URL": ("provisioner-secrets", "database-url"),
}
LICENSE_SECRET = ("provisioner-license-key", "signing-key.pem")
ENCRYPTION_SECRET = ("provisioner-encryption-key", "encryption.key")
TOKEN_SECRET = ("provisioner-token-key", "token.key")
# Variable -> (Secret, key): files mounted from Secrets.
SECRET_FILES = {"LICENSE_SIGNING_KEY_FILE": LICENSE_SECRET,
                "PROVISIONER_ENCRYPTION_KEY_FILE": ENCRYPTION_SECRET,
                "PROVISIONER_TOKEN_KEY_FILE": TOKEN_SECRET}
CHART_DIR_IN_IMAGE = "/usr/share/iotistic/charts/customer-instance"
REQUIRED_ENV = set(SECRET_ENV) | set(SECRET_FILES) | {"PROVISIONER_DOMAIN_BASE",
                                                      "PROVISIONER_CHART_DIR"}
# Variable -> (Secret, key) of an optional Secret: e-mail is on once the Secret exists.
OPTIONAL_SECRET_ENV = {"PROVISIONER_SMTP_URL": ("provisioner-smtp", "url"),
                       "PROVISIONER_MAIL_FROM": ("provisioner-smtp", "from"),
                       "PROVISIONER_PUBLIC_URL": ("provisioner-smtp", "public-url")}
OPTIONAL_ENV = {"PROMETHEUS_URL", "PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES"} | set(OPTIONAL_SECRET_ENV)

# ../shared/k8s-schemas ships no admissionregistration.k8s.io schemas: the admission policy is
# checked by tests/provisioner/admission/admission_policy_test.mjs instead (its structure, and its
# CEL with a real evaluator).
NO_SCHEMA_FILES = {"25-admission-policy.yaml"}

ARGS = {}


def group_of(api_version):
    return api_version.rpartition("/")[0]


def load_manifests(directory):
    """[(file, document)] of every YAML document under directory, in file order."""
    documents = []
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))
                       + glob.glob(os.path.join(directory, "*.yml"))):
        with open(path, encoding="utf-8") as f:
            documents += [(path, d) for d in yaml.safe_load_all(f) if d is not None]
    return documents


def chart_dir():
    return os.path.normpath(os.path.join(ARGS["manifests"], os.pardir, "charts",
                                         "customer-instance"))


def render(sets):
    command = [ARGS["provisioner"], "render", "--chart", chart_dir()]
    for value in sets:
        command += ["--set", value]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def switches():
    """Dotted paths of every boolean `enabled` in the chart's values.yaml (ingress.enabled)."""
    with open(os.path.join(chart_dir(), "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    found = []

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, prefix + key + ".")
            elif key == "enabled" and isinstance(value, bool):
                found.append(prefix + key)
    walk(values, "")
    return sorted(found)


def render_everything_off():
    """The same customer with every switch of values.yaml off (the Namespace stays: the
    provisioner always renders it)."""
    return render(CUSTOMER_SETS + [f"{switch}=false" for switch in ARGS["switches"]])


def identity(obj):
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def prunable_pairs(everything_on, everything_off):
    """{(group, resource)} of the objects rendered with every part on but not with every part
    off: what the provisioner deletes after an upgrade turns a part off. Never the Namespace."""
    off = {identity(obj) for obj in everything_off}
    return {(group_of(obj["apiVersion"]), KIND_RESOURCES.get(obj["kind"], obj["kind"]))
            for obj in everything_on
            if identity(obj) not in off and obj["kind"] != "Namespace"}


def expected_permissions(rendered, prunable):
    """{(group, resource, verb)} the provisioner needs, and kinds missing from KIND_RESOURCES."""
    expected, unknown = set(), set()
    for obj in rendered:
        kind = obj["kind"]
        if kind not in KIND_RESOURCES:
            unknown.add(f"{obj['apiVersion']} {kind}")
            continue
        pair = (group_of(obj["apiVersion"]), KIND_RESOURCES[kind])
        expected |= {pair + (verb,) for verb in APPLY_VERBS}
    expected |= {pair + ("get",) for pair in READ}
    expected |= {pair + ("delete",) for pair in DELETE | prunable}
    return expected, unknown


def granted_permissions(cluster_role):
    """{(group, resource, verb)} the ClusterRole grants, and problems that make it more than that."""
    granted, problems = set(), []
    if "aggregationRule" in cluster_role:
        problems.append("aggregationRule: the role must list its rules itself")
    for index, rule in enumerate(cluster_role.get("rules") or []):
        where = f"rules[{index}]"
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            if "*" in (rule.get(field) or []):
                problems.append(f"{where}.{field}: wildcard '*'")
        if rule.get("nonResourceURLs"):
            problems.append(f"{where}: nonResourceURLs {rule['nonResourceURLs']}")
        for resource in rule.get("resources") or []:
            if "/" in resource:
                problems.append(f"{where}: subresource {resource}")
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    granted.add((group, resource, verb))
    return granted, problems


def effective(pod_context, container_context, key):
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    if key in (container_context or {}):
        return container_context[key]
    return (pod_context or {}).get(key)


def setUpModule():  # noqa: N802 (unittest's name)
    ARGS["documents"] = load_manifests(ARGS["manifests"])
    ARGS["rendered"] = render(FULL_FEATURED_SETS)
    ARGS["switches"] = switches()
    ARGS["rendered_off"] = render_everything_off()


def objects(kind):
    return [d for _, d in ARGS["documents"] if d.get("kind") == kind]


def only(test, kind):
    found = objects(kind)
    test.assertEqual(len(found), 1, f"expected exactly one {kind} in {ARGS['manifests']}")
    return found[0]


class SchemaAndLint(unittest.TestCase):
    def test_every_object_validates_against_its_schema(self):
        schemas = os.path.join(ARGS["shared"], "k8s-schemas")
        self.assertTrue(os.path.isdir(schemas), f"no {schemas} (set BILLING_SHARED_DIR)")
        files = sorted(glob.glob(os.path.join(ARGS["manifests"], "*.y*ml")))
        self.assertTrue(files, f"no YAML files in {ARGS['manifests']}")
        problems = []
        for path in files:
            if os.path.basename(path) in NO_SCHEMA_FILES:
                continue
            found, _ = validate_manifests.check_objects(schemas, path)
            problems += [f"{os.path.basename(path)}: {p}" for p in found]
        self.assertEqual(problems, [], "\n".join(problems))

    def test_yamllint(self):
        config = os.path.join(ARGS["manifests"], os.pardir, ".yamllint.yaml")
        result = subprocess.run([ARGS["yamllint"], "-s", "-c", config, ARGS["manifests"]],
                                capture_output=True, text=True, check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class Objects(unittest.TestCase):
    def test_the_expected_objects_and_no_secrets(self):
        kinds = sorted(d["kind"] for _, d in ARGS["documents"])
        self.assertEqual(kinds, sorted(["Namespace", "ServiceAccount", "ClusterRole",
                                        "ClusterRoleBinding", "Service", "Deployment",
                                        "ValidatingAdmissionPolicy",
                                        "ValidatingAdmissionPolicyBinding"]),
                         "Secrets must not be committed; Roles/RoleBindings would add rights")

    def test_labels_names_and_namespaces(self):
        cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding",
                          "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
        for path, obj in ARGS["documents"]:
            meta = obj.get("metadata", {})
            where = f"{os.path.basename(path)}: {obj['kind']}/{meta.get('name')}"
            labels = meta.get("labels") or {}
            for key, value in LABELS.items():
                self.assertEqual(labels.get(key), value, f"{where}: label {key}")
            if obj["kind"] in cluster_scoped:
                self.assertNotIn("namespace", meta, f"{where} is cluster-scoped")
            else:
                self.assertEqual(meta.get("namespace"), NAMESPACE, where)
        self.assertEqual(only(self, "Namespace")["metadata"]["name"], NAMESPACE)
        for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service",
                     "Deployment"):
            self.assertEqual(only(self, kind)["metadata"]["name"], NAME, kind)


class Rbac(unittest.TestCase):
    def test_render_covers_every_chart_kind(self):
        # Kinds at the top level of the chart's templates must all be in the full-featured render
        # (else an optional kind behind a new switch would escape the RBAC check).
        chart = os.path.join(ARGS["manifests"], os.pardir, "charts", "customer-instance")
        in_templates = set()
        for path in glob.glob(os.path.join(chart, "templates", "*.yaml")):
            with open(path, encoding="utf-8") as f:
                in_templates |= set(re.findall(r"^kind:\s*([A-Za-z]+)", f.read(), re.M))
        rendered = {obj["kind"] for obj in ARGS["rendered"]}
        self.assertTrue(in_templates, f"no kinds found in {chart}/templates")
        self.assertEqual(in_templates - rendered, set(),
                         "the chart has kinds the full-featured render does not produce: turn "
                         "them on in FULL_FEATURED_SETS")

    def test_full_featured_turns_every_switch_on(self):
        self.assertTrue(ARGS["switches"], "no `enabled` switches found in values.yaml")
        missing = [s for s in ARGS["switches"] if f"{s}=true" not in FULL_FEATURED_SETS]
        self.assertEqual(missing, [], "values.yaml has switches FULL_FEATURED_SETS leaves off "
                         "(and the provisioner's prune overlay, StackRenderer::"
                         "EveryOptionalPartOverlay in provisioner/render/src/stack_renderer.cpp, may too)")

    def test_prunable_objects_are_the_optional_ones(self):
        # The render with everything off is a subset of the one with everything on (else an
        # object would appear only when a part is off, and nothing would prune it).
        on = {identity(obj) for obj in ARGS["rendered"]}
        off = {identity(obj) for obj in ARGS["rendered_off"]}
        self.assertEqual(off - on, set(), "objects rendered only with a part off")
        prunable = prunable_pairs(ARGS["rendered"], ARGS["rendered_off"])
        self.assertTrue(prunable, "no optional objects: is the everything-off render right?")
        self.assertNotIn(("", "namespaces"), prunable)
        # The objects every customer has are never pruned, so they get no delete.
        for always in (("", "secrets"), ("", "configmaps"), ("apps", "deployments")):
            self.assertNotIn(always, prunable)

    def test_cluster_role_grants_exactly_what_the_provisioner_applies(self):
        prunable = prunable_pairs(ARGS["rendered"], ARGS["rendered_off"])
        expected, unknown = expected_permissions(ARGS["rendered"], prunable)
        self.assertEqual(unknown, set(),
                         "provisioner render produces kinds with no resource in KIND_RESOURCES: "
                         "add them there and a rule for them in 20-rbac.yaml")
        granted, problems = granted_permissions(only(self, "ClusterRole"))
        if problems:
            self.fail("\n".join(problems))
        missing = sorted(expected - granted)
        extra = sorted(granted - expected)
        if missing or extra:
            self.fail(f"\nmissing (group, resource, verb): {missing}"
                      f"\nnot needed (group, resource, verb): {extra}")

    def test_binding_binds_the_role_to_the_service_account(self):
        binding = only(self, "ClusterRoleBinding")
        self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                              "kind": "ClusterRole", "name": NAME})
        self.assertEqual(binding.get("subjects"),
                         [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}])
        account = only(self, "ServiceAccount")
        self.assertEqual(account["metadata"].get("namespace"), NAMESPACE)
        self.assertNotEqual(account.get("automountServiceAccountToken"), False,
                            "the provisioner needs its in-cluster credentials")


class Deployment(unittest.TestCase):
    def setUp(self):
        self.deployment = only(self, "Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.assertEqual(len(self.pod["containers"]), 1)
        self.container = self.pod["containers"][0]

    def test_workload(self):
        spec = self.deployment["spec"]
        self.assertEqual(spec.get("replicas"), 1)
        with open(os.path.join(chart_dir(), "Chart.yaml"), encoding="utf-8") as chart:
            app_version = yaml.safe_load(chart)["appVersion"]
        self.assertEqual(self.container["image"], f"{IMAGE_REPOSITORY}:{app_version}")
        self.assertEqual(self.container.get("imagePullPolicy"), "IfNotPresent")
        self.assertEqual(self.container.get("command", []) + self.container.get("args", []),
                         COMMAND)
        self.assertEqual(self.pod.get("serviceAccountName"), NAME)
        self.assertIs(self.pod.get("automountServiceAccountToken"), True)
        pod_labels = spec["template"]["metadata"]["labels"]
        for key, value in LABELS.items():
            self.assertEqual(pod_labels.get(key), value, f"pod label {key}")
        selector = spec["selector"]["matchLabels"]
        self.assertLessEqual(selector.items(), pod_labels.items())
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            self.assertFalse(self.pod.get(key, False), key)
        for volume in self.pod.get("volumes", []):
            self.assertNotIn("hostPath", volume, volume["name"])

    def test_environment_is_the_contract_and_secrets_come_from_secrets(self):
        self.assertNotIn("envFrom", self.container)
        env = self.container.get("env", [])
        names = [e["name"] for e in env]
        self.assertEqual(len(names), len(set(names)), f"duplicate env: {names}")
        self.assertEqual(REQUIRED_ENV - set(names), set(), "required env missing")
        self.assertEqual(set(names) - REQUIRED_ENV - OPTIONAL_ENV, set(), "env not in the contract")
        by_name = {e["name"]: e for e in env}
        for name, (secret, key) in SECRET_ENV.items():
            self.assertNotIn("value", by_name[name], f"{name} must not be a literal")
            self.assertEqual(by_name[name].get("valueFrom"),
                             {"secretKeyRef": {"name": secret, "key": key}}, name)
        for name, (secret, key) in OPTIONAL_SECRET_ENV.items():
            self.assertIn(name, by_name)
            self.assertEqual(by_name[name].get("valueFrom"),
                             {"secretKeyRef": {"name": secret, "key": key, "optional": True}}, name)
        for name in set(names) - set(SECRET_ENV) - set(OPTIONAL_SECRET_ENV):
            self.assertTrue(by_name[name].get("value"), f"{name}: a non-empty value")
        self.assertEqual(by_name["PROVISIONER_CHART_DIR"]["value"], CHART_DIR_IN_IMAGE)

    def test_key_files_are_read_only_secret_files(self):
        env = {e["name"]: e for e in self.container.get("env", [])}
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        for variable, (secret_name, secret_key) in SECRET_FILES.items():
            with self.subTest(variable=variable):
                key_file = env[variable]["value"]
                directory, filename = os.path.split(key_file)
                mounts = [m for m in self.container.get("volumeMounts", [])
                          if m["mountPath"] == directory]
                self.assertEqual(len(mounts), 1, f"no volume mounted at {directory}")
                self.assertIs(mounts[0].get("readOnly"), True)
                self.assertNotIn("subPath", mounts[0])
                secret = volumes[mounts[0]["name"]].get("secret")
                self.assertIsNotNone(secret, f"{mounts[0]['name']} is not a Secret volume")
                self.assertEqual(secret["secretName"], secret_name)
                self.assertEqual(secret.get("defaultMode"), 0o400)
                items = secret.get("items")
                if items is None:
                    self.assertEqual(filename, secret_key)
                else:
                    self.assertEqual(items, [{"key": secret_key, "path": filename}])
        # The files of a Secret volume belong to root; only with fsGroup can a non-root process
        # read a 0400 file (the kubelet gives it to that group with group read added).
        self.assertIsNotNone((self.pod.get("securityContext") or {}).get("fsGroup"),
                             "fsGroup is needed for the non-root process to read the 0400 keys")
        # Never the opt-out in the platform's own Deployment.
        self.assertNotIn("PROVISIONER_ALLOW_UNENCRYPTED_SECRETS", env)

    def test_runs_as_non_root_with_a_read_only_root_filesystem(self):
        pod_context = self.pod.get("securityContext") or {}
        for container in self.pod["containers"] + self.pod.get("initContainers", []):
            context = container.get("securityContext") or {}
            where = f"container {container['name']}"
            self.assertIs(effective(pod_context, context, "runAsNonRoot"), True, where)
            self.assertNotEqual(effective(pod_context, context, "runAsUser"), 0, where)
            self.assertIs(context.get("readOnlyRootFilesystem"), True, where)
            self.assertIs(context.get("allowPrivilegeEscalation"), False, where)
            self.assertNotEqual(context.get("privileged"), True, where)
            capabilities = context.get("capabilities") or {}
            self.assertEqual(capabilities.get("drop"), ["ALL"], where)
            self.assertFalse(capabilities.get("add"), where)
            self.assertEqual((effective(pod_context, context, "seccompProfile") or {}).get("type"),
                             "RuntimeDefault", where)

    def test_resources(self):
        resources = self.container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                self.assertIn(resource, resources.get(section) or {}, f"{section}.{resource}")

    def test_probes_and_port(self):
        ports = self.container.get("ports", [])
        self.assertEqual([(p["name"], p["containerPort"]) for p in ports],
                         [("http", PORT), ("health", HEALTH_PORT)])
        for probe in ("livenessProbe", "readinessProbe"):
            http = (self.container.get(probe) or {}).get("httpGet") or {}
            self.assertEqual(http.get("path"), "/healthz", probe)
            self.assertIn(http.get("port"), ("health", HEALTH_PORT), probe)


class Service(unittest.TestCase):
    def test_service(self):
        service = only(self, "Service")
        spec = service["spec"]
        self.assertEqual(spec.get("type", "ClusterIP"), "ClusterIP")
        self.assertEqual([(p["name"], p["port"]) for p in spec["ports"]],
                         [("http", PORT), ("health", HEALTH_PORT)])
        for port, name, number in zip(spec["ports"], ("http", "health"), (PORT, HEALTH_PORT)):
            self.assertIn(port.get("targetPort", number), (name, number))
        pod_labels = only(self, "Deployment")["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(spec["selector"])
        self.assertLessEqual(spec["selector"].items(), pod_labels.items(), "selector")
        annotations = service["metadata"].get("annotations") or {}
        self.assertEqual(annotations.get("prometheus.io/scrape"), "true")
        self.assertEqual(annotations.get("prometheus.io/port"), str(HEALTH_PORT))
        self.assertEqual(annotations.get("prometheus.io/path"), "/metrics")


def main(argv):
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    ARGS.update(provisioner=argv[1], manifests=os.path.abspath(argv[2]),
                shared=os.environ.get("BILLING_SHARED_DIR") or argv[3], yamllint=argv[4])
    program = unittest.main(argv=[argv[0]] + argv[5:], exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
