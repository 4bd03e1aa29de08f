// Evaluates the CEL of manifests/provisioner/25-admission-policy.yaml with a real CEL evaluator
// (@bufbuild/cel) the way the API server applies a ValidatingAdmissionPolicy: matchConstraints,
// then every matchCondition, then the variables, then every validation (an error counts as a
// denial: failurePolicy Fail). Registered with ctest as provisioner_admission_policy_test.
//
//   node admission_policy_test.mjs PROVISIONER MANIFESTS_DIR
//
// The allowed requests are every write the provisioner makes for a customer, derived from what
// `provisioner render` produces with every optional part on (server-side apply = CREATE or
// UPDATE of each object, DELETE of the prunable ones and of the Namespace at teardown); the
// forbidden ones are the writes a stolen provisioner token would make elsewhere.
import { run } from "@bufbuild/cel";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";

const [provisioner, manifestsDir] = process.argv.slice(2);
if (!provisioner || !manifestsDir) {
  console.error("usage: node admission_policy_test.mjs PROVISIONER MANIFESTS_DIR");
  process.exit(2);
}

const PROVISIONER_USER = "system:serviceaccount:iotistic-system:provisioner";
const CUSTOMER = "acme";

function loadYaml(text) {
  return parseAllDocuments(text)
    .map((d) => d.toJS())
    .filter((d) => d !== null);
}

const policyDocs = loadYaml(readFileSync(join(manifestsDir, "25-admission-policy.yaml"), "utf8"));
const policy = policyDocs.find((d) => d.kind === "ValidatingAdmissionPolicy");
const binding = policyDocs.find((d) => d.kind === "ValidatingAdmissionPolicyBinding");

// CEL sees maps, not plain JS objects.
function celValue(v) {
  if (Array.isArray(v)) return v.map(celValue);
  if (v !== null && typeof v === "object") {
    return new Map(Object.entries(v).map(([k, x]) => [k, celValue(x)]));
  }
  return v;
}

function matchesConstraints(request) {
  return policy.spec.matchConstraints.resourceRules.some((rule) => {
    const has = (list, value) => list.includes("*") || list.includes(value);
    return (
      has(rule.apiGroups, request.resource.group) &&
      has(rule.apiVersions, request.resource.version) &&
      has(rule.resources, request.resource.resource) &&
      has(rule.operations, request.operation)
    );
  });
}

/** {allowed, message} as the API server would decide for this policy alone. */
function admit(request) {
  if (!matchesConstraints(request)) return { allowed: true, message: "not matched" };
  const bindings = { request: celValue(request), object: null, oldObject: null };
  try {
    for (const condition of policy.spec.matchConditions ?? []) {
      if (run(condition.expression, bindings) !== true) {
        return { allowed: true, message: `matchCondition ${condition.name} false` };
      }
    }
    const variables = new Map();
    for (const variable of policy.spec.variables ?? []) {
      variables.set(variable.name, run(variable.expression, { ...bindings, variables }));
    }
    const scope = { ...bindings, variables };
    for (const validation of policy.spec.validations) {
      const verdict = run(validation.expression, scope);
      if (verdict !== true) {
        const message = validation.messageExpression
          ? run(validation.messageExpression, scope)
          : validation.message;
        return { allowed: false, message };
      }
    }
    return { allowed: true, message: "validations passed" };
  } catch (error) {
    assert.equal(policy.spec.failurePolicy, "Fail", "an evaluation error must deny");
    return { allowed: false, message: `evaluation error: ${error.message}` };
  }
}

// kind -> resource, as tests/provisioner/provisioner_manifests_test.py maps them.
const RESOURCES = {
  Namespace: "namespaces",
  ResourceQuota: "resourcequotas",
  NetworkPolicy: "networkpolicies",
  Secret: "secrets",
  ConfigMap: "configmaps",
  Service: "services",
  StatefulSet: "statefulsets",
  Deployment: "deployments",
  Ingress: "ingresses",
  ServiceMonitor: "servicemonitors",
};

function requestFor(obj, operation, user = PROVISIONER_USER) {
  const [group, version] = obj.apiVersion.includes("/")
    ? obj.apiVersion.split("/")
    : ["", obj.apiVersion];
  const resource = RESOURCES[obj.kind];
  assert.ok(resource, `no resource for kind ${obj.kind}: add it to RESOURCES`);
  return {
    operation,
    name: obj.metadata.name,
    namespace: obj.metadata.namespace ?? "",
    resource: { group, version, resource },
    userInfo: { username: user },
  };
}

function rendered(sets) {
  const args = ["render", "--chart", resolve(manifestsDir, "..", "charts", "customer-instance")];
  for (const set of sets) args.push("--set", set);
  return loadYaml(execFileSync(provisioner, args, { encoding: "utf8" }));
}

const FULL_FEATURED = [
  `customer.id=${CUSTOMER}`,
  "customer.email=a@b.c",
  "customer.companyName=Acme",
  "license.key=x",
  "domain.base=example.com",
  "postgres.password=p4ssw0rd-test",
  "namespace.create=true",
  "resourceQuota.enabled=true",
  "networkPolicy.enabled=true",
  "ingress.enabled=true",
  "ingress.tls.enabled=true",
  "ingress.exposeMetrics=true",
  "exporter.basicAuth.password=m3trics-pw",
  "exporter.serviceMonitor.enabled=true",
];

/** Some API server versions put a Namespace object's own name into request.namespace. */
function bothNamespaceShapes(request) {
  if (request.resource.resource !== "namespaces") return [request];
  return [request, { ...request, namespace: request.name }];
}

test("the policy and its binding are well formed and bound", () => {
  assert.ok(policy, "no ValidatingAdmissionPolicy in 25-admission-policy.yaml");
  assert.ok(binding, "no ValidatingAdmissionPolicyBinding in 25-admission-policy.yaml");
  assert.equal(policy.apiVersion, "admissionregistration.k8s.io/v1");
  assert.equal(binding.apiVersion, "admissionregistration.k8s.io/v1");
  assert.equal(binding.spec.policyName, policy.metadata.name);
  assert.deepEqual(binding.spec.validationActions, ["Deny"]);
  assert.equal(policy.spec.failurePolicy, "Fail");
  assert.ok(!binding.spec.paramRef && !policy.spec.paramKind, "no parameters to go missing");
  // The matched user is the ServiceAccount that 10-serviceaccount.yaml defines.
  const account = loadYaml(readFileSync(join(manifestsDir, "10-serviceaccount.yaml"), "utf8"))[0];
  assert.equal(
    `system:serviceaccount:${account.metadata.namespace}:${account.metadata.name}`,
    PROVISIONER_USER,
  );
});

test("every write the provisioner makes for a customer is allowed", () => {
  const objects = rendered(FULL_FEATURED);
  assert.ok(objects.length > 5, "provisioner render produced too little");
  const kinds = new Set(objects.map((o) => o.kind));
  assert.ok(kinds.has("Namespace") && kinds.has("Secret") && kinds.has("Deployment"));
  for (const obj of objects) {
    for (const operation of ["CREATE", "UPDATE", "DELETE"]) {
      for (const request of bothNamespaceShapes(requestFor(obj, operation))) {
        const verdict = admit(request);
        assert.ok(
          verdict.allowed,
          `${operation} ${obj.kind} ${request.namespace}/${obj.metadata.name} denied: ${verdict.message}`,
        );
      }
    }
  }
});

test("writes outside customer namespaces are denied, with a message naming them", () => {
  const secret = (namespace) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "x", namespace },
  });
  const namespace = (name) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  const forbidden = [
    requestFor(secret("kube-system"), "UPDATE"),
    requestFor(secret("default"), "CREATE"),
    requestFor(secret("monitoring"), "DELETE"),
    requestFor(secret("customer-"), "UPDATE"), // no id
    requestFor(secret("customer-Acme"), "UPDATE"), // not a customer id
    requestFor(secret("customer-acme-"), "UPDATE"),
    requestFor(secret("xcustomer-acme"), "UPDATE"),
    requestFor(secret("customer--"), "UPDATE"),
    requestFor({ ...secret("kube-system"), kind: "Deployment", apiVersion: "apps/v1" }, "UPDATE"),
    requestFor(namespace("kube-system"), "DELETE"),
    requestFor(namespace("kube-system"), "UPDATE"),
    // Its own namespace: its Secrets (admin token, signing key) and its own Deployment.
    requestFor(secret("iotistic-system"), "UPDATE"),
    requestFor({ ...secret("iotistic-system"), kind: "Deployment", apiVersion: "apps/v1" }, "UPDATE"),
    requestFor(namespace("iotistic-system"), "UPDATE"), // its own namespace's labels (PSA)
    requestFor(namespace("iotistic-system"), "DELETE"),
    requestFor(namespace("default"), "CREATE"),
    requestFor(namespace("evil"), "CREATE"),
    // Cluster-scoped objects the ClusterRole does not grant, should it ever be widened.
    {
      operation: "CREATE",
      name: "provisioner-admin",
      namespace: "",
      resource: { group: "rbac.authorization.k8s.io", version: "v1", resource: "clusterrolebindings" },
      userInfo: { username: PROVISIONER_USER },
    },
    {
      operation: "DELETE",
      name: "provisioner-customer-namespaces-only",
      namespace: "",
      resource: {
        group: "admissionregistration.k8s.io",
        version: "v1",
        resource: "validatingadmissionpolicies",
      },
      userInfo: { username: PROVISIONER_USER },
    },
    {
      operation: "CONNECT",
      name: "etcd-0",
      namespace: "kube-system",
      resource: { group: "", version: "v1", resource: "pods/exec" },
      userInfo: { username: PROVISIONER_USER },
    },
  ];
  for (const request of forbidden.flatMap(bothNamespaceShapes)) {
    const verdict = admit(request);
    const what = `${request.operation} ${request.resource.resource} ${request.namespace}/${request.name}`;
    assert.ok(!verdict.allowed, `${what} allowed`);
    assert.match(verdict.message, /^the provisioner may only write inside customer-\{id\}/, what);
    assert.ok(verdict.message.includes(request.name), `${what}: message names the object`);
  }
});

test("other users are not matched by the policy", () => {
  const request = requestFor(
    { apiVersion: "v1", kind: "Secret", metadata: { name: "x", namespace: "kube-system" } },
    "UPDATE",
    "system:serviceaccount:kube-system:replicaset-controller",
  );
  assert.deepEqual(admit(request), { allowed: true, message: "matchCondition only-the-provisioner false" });
  // Another service account named provisioner in another namespace is not the provisioner.
  const lookalike = { ...request, userInfo: { username: "system:serviceaccount:evil:provisioner" } };
  assert.equal(admit(lookalike).allowed, true);
});

test("a policy that stopped checking would be noticed", () => {
  // The evaluator is not vacuous: the same request is denied by this policy and would be
  // allowed by one whose validation is `true`.
  const request = requestFor(
    { apiVersion: "v1", kind: "Secret", metadata: { name: "x", namespace: "kube-system" } },
    "UPDATE",
  );
  assert.equal(admit(request).allowed, false);
  const saved = policy.spec.validations;
  policy.spec.validations = [{ expression: "true" }];
  try {
    assert.equal(admit(request).allowed, true);
  } finally {
    policy.spec.validations = saved;
  }
});
