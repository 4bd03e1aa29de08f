#!/usr/bin/python3
"""Checks of manifests/prometheus/, dashboards/ and manifests/grafana/ for tests/monitoring.

Run with Debian's python3 (python3-jsonschema, python3-yaml). Subcommands:

  dashboards SCHEMA_DIR DASHBOARD...
      Every dashboard against ../shared/grafana-schemas: the whole JSON against
      dashboard.jsonschema.json; each panel's options (and timeseries/table
      fieldConfig.defaults.custom) against its plugin's schema; each target against
      prometheus.jsonschema.json. Plus what the schemas do not say: schemaVersion >= 39, a
      Prometheus datasource variable that every panel and target uses, unique panel ids, panels
      inside the 24-column grid that do not overlap, every $variable defined.

  configmap CONFIGMAP K8S_SCHEMA_DIR DASHBOARD...
      The ConfigMap holds exactly the dashboard files, byte for byte, carries the label
      grafana_dashboard: "1" and validates against the Kubernetes ConfigMap schema.

  promql PROMTOOL OUT_DIR DASHBOARD...
      Every target expression (and variable query), variables filled in, written as recording
      rules and checked with `promtool check rules` (PromQL syntax, before any server runs).

  queries CUSTOMER DASHBOARD...
      Prints what the end-to-end test runs, one query per line, fields separated by tabs:
      "panel<TAB>dashboard<TAB>panel title<TAB>refId<TAB>expr" and
      "variable<TAB>dashboard<TAB>name<TAB>label<TAB>expr" (label_values(M, L) as count by (L) (M)).

  scrape-job PROMETHEUS_YML EXPORTER_ADDRESS CUSTOMER
      Prints the example's billing-exporter job with kubernetes_sd_configs replaced by a static
      target carrying the __meta_kubernetes_* labels that Kubernetes service discovery gives the
      chart's exporter Service (so that its relabelling runs unchanged), and its rule_files with
      absolute paths: the extra_config of testbed::PrometheusServer.

  scrape-config PROMTOOL PROMETHEUS_YML OUT_DIR
      `promtool check config` on the example with the same replacement (Debian's Prometheus is
      built without Kubernetes discovery, so the file as it is cannot be loaded here).

SCHEMA_DIR and K8S_SCHEMA_DIR are replaced by $BILLING_SHARED_DIR/grafana-schemas and
$BILLING_SHARED_DIR/k8s-schemas when that variable is set.

Prints one line per problem and exits 1 if there was any.
"""
import copy
import glob
import json
import os
import re
import subprocess
import sys

import jsonschema
import yaml

PANEL_SCHEMAS = {"timeseries", "stat", "gauge", "bargauge", "table", "text"}
MIN_SCHEMA_VERSION = 39
GRID_COLUMNS = 24

# What Grafana substitutes, for a 1 s scrape interval and a one-hour time range: $__interval is
# the range divided by the panel's data points (kept small here so that the rate windows below
# hold several 1 s samples); $__rate_interval is max($__interval + scrape interval, 4 * scrape
# interval).
BUILTIN_VARIABLES = {
    "__interval": "2s",
    "__interval_ms": "2000",
    "__rate_interval": "4s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
VARIABLE_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def schema_errors(validator, document, where):
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        yield f"{where}: {path}: {error.message}"


def sub_validator(schema, definition):
    """A validator for one definition of a self-contained schema file."""
    wrapped = {"$schema": schema.get("$schema"), "definitions": schema["definitions"],
               "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft7Validator(wrapped)


def all_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        for inner in panel.get("panels", []) if panel.get("type") == "row" else []:
            yield inner


def variables_of(dashboard):
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr, dashboard, customer):
    """The expression as Grafana sends it with `customer` selected in every query variable (one
    value: Grafana substitutes it as it is, in a regex matcher too)."""
    variables = variables_of(dashboard)

    def value(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        variable = variables.get(name)
        if variable is None:
            raise KeyError(name)
        if variable["type"] == "datasource":
            return "prometheus"
        return customer

    return VARIABLE_RE.sub(value, expr)


def check_dashboards(schema_dir, paths):
    problems = []
    dashboard_schema = load_json(os.path.join(schema_dir, "dashboard.jsonschema.json"))
    dashboard_validator = jsonschema.Draft7Validator(dashboard_schema)
    target_validator = jsonschema.Draft7Validator(
        load_json(os.path.join(schema_dir, "prometheus.jsonschema.json")))
    panel_schemas = {kind: load_json(os.path.join(schema_dir, f"{kind}.jsonschema.json"))
                     for kind in PANEL_SCHEMAS}
    uids = set()
    for path in paths:
        name = os.path.basename(path)
        try:
            dashboard = load_json(path)
        except (OSError, ValueError) as e:
            problems.append(f"{name}: {e}")
            continue
        problems.extend(schema_errors(dashboard_validator, dashboard, name))
        if not isinstance(dashboard.get("schemaVersion"), int) or \
                dashboard["schemaVersion"] < MIN_SCHEMA_VERSION:
            problems.append(f"{name}: schemaVersion {dashboard.get('schemaVersion')!r} is below "
                            f"{MIN_SCHEMA_VERSION}")
        uid = dashboard.get("uid")
        if not uid or uid in uids:
            problems.append(f"{name}: missing or duplicate uid {uid!r}")
        uids.add(uid)
        variables = variables_of(dashboard)
        datasource_variables = [v for v in variables.values()
                                if v.get("type") == "datasource" and v.get("query") == "prometheus"]
        if len(datasource_variables) != 1:
            problems.append(f"{name}: needs exactly one datasource variable with query "
                            f"\"prometheus\", has {len(datasource_variables)}")
            expected_ds = None
        else:
            expected_ds = {"type": "prometheus",
                           "uid": "${" + datasource_variables[0]["name"] + "}"}
        for variable in variables.values():
            if variable.get("type") == "query" and variable.get("datasource") != expected_ds:
                problems.append(f"{name}: variable {variable['name']}: datasource "
                                f"{variable.get('datasource')} is not {expected_ds}")
        ids = set()
        occupied = {}
        panels = list(all_panels(dashboard))
        if not panels:
            problems.append(f"{name}: no panels")
        for panel in panels:
            title = panel.get("title", "?")
            where = f"{name}: panel {title!r}"
            if panel.get("id") in ids:
                problems.append(f"{where}: duplicate id {panel.get('id')}")
            ids.add(panel.get("id"))
            grid = panel.get("gridPos", {})
            if panel.get("type") != "row":
                if grid.get("x", 0) + grid.get("w", 0) > GRID_COLUMNS:
                    problems.append(f"{where}: extends past column {GRID_COLUMNS}")
                for x in range(grid.get("x", 0), grid.get("x", 0) + grid.get("w", 0)):
                    for y in range(grid.get("y", 0), grid.get("y", 0) + grid.get("h", 0)):
                        if (x, y) in occupied:
                            problems.append(f"{where}: overlaps {occupied[(x, y)]!r}")
                            break
                        occupied[(x, y)] = title
                    else:
                        continue
                    break
            kind = panel.get("type")
            if kind == "row":
                continue
            if kind not in PANEL_SCHEMAS:
                problems.append(f"{where}: panel type {kind!r} has no schema here")
                continue
            schema = panel_schemas[kind]
            if "Options" in schema["definitions"]:
                problems.extend(schema_errors(sub_validator(schema, "Options"),
                                              panel.get("options", {}), f"{where}: options"))
            custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
            if custom is not None and "FieldConfig" in schema["definitions"]:
                problems.extend(schema_errors(sub_validator(schema, "FieldConfig"), custom,
                                              f"{where}: fieldConfig.defaults.custom"))
            if kind == "text":
                continue
            if panel.get("datasource") != expected_ds:
                problems.append(f"{where}: datasource {panel.get('datasource')} is not "
                                f"{expected_ds}")
            targets = panel.get("targets", [])
            if not targets:
                problems.append(f"{where}: no targets")
            refs = [t.get("refId") for t in targets]
            if len(set(refs)) != len(refs):
                problems.append(f"{where}: duplicate refIds {refs}")
            for target in targets:
                problems.extend(schema_errors(target_validator, target,
                                              f"{where}: target {target.get('refId')}"))
                if target.get("datasource") != expected_ds:
                    problems.append(f"{where}: target {target.get('refId')}: datasource "
                                    f"{target.get('datasource')} is not {expected_ds}")
                try:
                    substitute(target.get("expr", ""), dashboard, "x")
                except KeyError as e:
                    problems.append(f"{where}: target {target.get('refId')}: undefined "
                                    f"variable ${e.args[0]}")
    return problems


def check_configmap(configmap_path, k8s_schema_dir, paths):
    problems = []
    with open(configmap_path, encoding="utf-8") as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    if len(documents) != 1:
        return [f"{configmap_path}: expected one document, found {len(documents)}"]
    configmap = documents[0]
    schema = load_json(os.path.join(k8s_schema_dir, "v1.31.0-standalone-strict",
                                    "configmap-v1.json"))
    problems.extend(schema_errors(jsonschema.Draft7Validator(schema), configmap, "ConfigMap"))
    labels = (configmap.get("metadata") or {}).get("labels") or {}
    if labels.get("grafana_dashboard") != "1":
        problems.append("ConfigMap: metadata.labels.grafana_dashboard is not \"1\"")
    data = configmap.get("data") or {}
    files = {os.path.basename(p): p for p in paths}
    for key in sorted(set(data) - set(files)):
        problems.append(f"ConfigMap: data.{key} is not a file in dashboards/")
    for key in sorted(set(files) - set(data)):
        problems.append(f"ConfigMap: dashboards/{key} is missing from data")
    for key in sorted(set(files) & set(data)):
        with open(files[key], encoding="utf-8") as f:
            if f.read() != data[key]:
                problems.append(f"ConfigMap: data.{key} differs from dashboards/{key} "
                                "(run /usr/bin/python3 dashboards/make-configmap.py)")
    return problems


def queries(paths, customer):
    """(kind, dashboard, title, refId-or-label, expr) for every target and query variable."""
    out = []
    for path in paths:
        dashboard = load_json(path)
        name = os.path.basename(path)
        for variable in variables_of(dashboard).values():
            if variable.get("type") != "query":
                continue
            m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*",
                             variable.get("query", ""))
            if not m:
                raise SystemExit(f"{name}: variable {variable['name']}: only label_values(M, L) "
                                 "queries are supported by this check")
            out.append(("variable", name, variable["name"], m.group(2),
                        f"count by ({m.group(2)}) ({substitute(m.group(1), dashboard, customer)})"))
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("hide"):
                    continue
                out.append(("panel", name, panel.get("title", "?"), target.get("refId", "?"),
                            substitute(target["expr"], dashboard, customer)))
    return out


def check_promql(promtool, out_dir, paths):
    rules = []
    for index, (kind, dashboard, title, ref, expr) in enumerate(queries(paths, "customer")):
        rules.append({"record": f"dashboard_query_{index}", "expr": expr,
                      "labels": {"source": f"{dashboard} {kind} {title} {ref}"}})
    path = os.path.join(out_dir, "dashboard-queries.rules.yml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f)
    result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    if result.returncode != 0:
        return [f"promtool check rules on the dashboard queries: {result.stdout}{result.stderr}"]
    print(f"{len(rules)} dashboard queries parse")
    return []


def discovered_target(address, customer, namespace=None):
    """A static_configs entry with the __meta_kubernetes_* labels that Kubernetes discovery gives
    the endpoint of the chart's exporter Service for `customer`, in `namespace` (default
    customer-{customer}; another value poses as that customer from elsewhere)."""
    host, port = address.rsplit(":", 1)
    fullname = f"customer-{customer}"
    namespace = namespace or fullname
    meta = "__meta_kubernetes_"
    # The endpoint discovered for the Service port "metrics" (its own port deliberately different
    # from the annotation's, so that the relabelling has to take the annotation's).
    return {
        "targets": [f"{host}:1"],
        "labels": {
            f"{meta}namespace": namespace,
            f"{meta}service_name": f"{fullname}-exporter",
            f"{meta}service_label_app_kubernetes_io_name": "customer-instance",
            f"{meta}service_label_app_kubernetes_io_instance": fullname,
            f"{meta}service_label_app_kubernetes_io_component": "exporter",
            f"{meta}service_label_app_kubernetes_io_part_of": "iotistic",
            f"{meta}service_label_billing_customer": customer,
            f"{meta}service_annotation_prometheus_io_scrape": "true",
            f"{meta}service_annotation_prometheus_io_port": port,
            f"{meta}service_annotation_prometheus_io_path": "/metrics",
            f"{meta}endpoint_port_name": "metrics",
            f"{meta}pod_name": f"{fullname}-exporter-0",
        }}


def static_job(prometheus_yml, address, customer):
    """The billing-exporter job as Kubernetes discovery would present the chart's Service."""
    with open(prometheus_yml, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    base = os.path.dirname(os.path.abspath(prometheus_yml))
    jobs = [j for j in config["scrape_configs"] if j["job_name"] == "billing-exporter"]
    if len(jobs) != 1:
        raise SystemExit(f"{prometheus_yml}: no single job billing-exporter")
    job = copy.deepcopy(jobs[0])
    if "kubernetes_sd_configs" not in job:
        raise SystemExit(f"{prometheus_yml}: the billing-exporter job has no kubernetes_sd_configs")
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [discovered_target(address, customer)]
    rule_files = [os.path.join(base, r) for r in config.get("rule_files", [])]
    return job, rule_files, config


def scrape_job(prometheus_yml, address, customer):
    job, rule_files, _ = static_job(prometheus_yml, address, customer)
    # Appended under the harness' scrape_configs: the job as a list item, then rule_files.
    text = yaml.safe_dump([job], sort_keys=False)
    print("".join(f"  {line}\n" for line in text.splitlines()), end="")
    print(yaml.safe_dump({"rule_files": rule_files}, sort_keys=False), end="")


def check_scrape_config(promtool, prometheus_yml, out_dir):
    job, rule_files, config = static_job(prometheus_yml, "127.0.0.1:9090", "abc123")
    config["scrape_configs"] = [job if j["job_name"] == job["job_name"] else j
                                for j in config["scrape_configs"]]
    config["rule_files"] = rule_files
    path = os.path.join(out_dir, "prometheus-static.yml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    result = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True)
    print(result.stdout + result.stderr, end="")
    return [] if result.returncode == 0 else [f"promtool check config failed on {path}"]


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    command, args = argv[1], argv[2:]
    shared = os.environ.get("BILLING_SHARED_DIR")
    if shared and command == "dashboards" and args:
        args[0] = os.path.join(shared, "grafana-schemas")
    if shared and command == "configmap" and len(args) > 1:
        args[1] = os.path.join(shared, "k8s-schemas")
    if command == "dashboards" and len(args) >= 2:
        problems = check_dashboards(args[0], args[1:])
    elif command == "configmap" and len(args) >= 3:
        problems = check_configmap(args[0], args[1], args[2:])
    elif command == "promql" and len(args) >= 3:
        problems = check_promql(args[0], args[1], args[2:])
    elif command == "queries" and len(args) >= 2:
        for row in queries(args[1:], args[0]):
            if any("\t" in field or "\n" in field for field in row):
                raise SystemExit(f"tab or newline in {row}")
            print("\t".join(row))
        return 0
    elif command == "scrape-job" and len(args) == 3:
        scrape_job(*args)
        return 0
    elif command == "scrape-config" and len(args) == 3:
        problems = check_scrape_config(*args)
    else:
        raise SystemExit(__doc__)
    for problem in problems:
        print(problem)
    if not problems:
        print("ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
