#!/usr/bin/python3
"""One version everywhere: project(VERSION) in CMakeLists.txt is the chart's appVersion, the tag
of every image of the platform the chart and manifests/provisioner/ deploy, and what both binaries'
--version print; upstream images are pinned to a release; no manifest says "latest".

usage: versions_test.py SOURCE_DIR BILLING_EXPORTER PROVISIONER
"""
import os
import re
import subprocess
import sys
import unittest

import yaml

sys.dont_write_bytecode = True
ARGS = {}
PLATFORM_REPOSITORIES = {"iotistic/billing-exporter", "iotistic/mosquitto", "iotistic/api",
                         "iotistic/dashbaoard"}


def source(*parts):
    return os.path.join(ARGS["source"], *parts)


def project_version():
    with open(source("CMakeLists.txt"), encoding="utf-8") as cmake:
        match = re.search(r"^project\(\w+ VERSION ([0-9]+\.[0-9]+\.[0-9]+)", cmake.read(), re.M)
    if not match:
        raise AssertionError("CMakeLists.txt has no project(... VERSION x.y.z)")
    return match.group(1)


def load_yaml(*parts):
    with open(source(*parts), encoding="utf-8") as text:
        return yaml.safe_load(text)


def render(*sets):
    command = [ARGS["provisioner"], "render", "--chart",
               source("manifests", "charts", "customer-instance")]
    for value in ("customer.id=abc123", "license.key=k", "postgres.password=p4ssw0rd-x") + sets:
        command += ["--set", value]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def containers(documents):
    for document in documents:
        pod = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            yield document["metadata"]["name"], container


class VersionsTest(unittest.TestCase):
    def setUp(self):
        self.version = project_version()

    def test_binaries_print_the_project_version(self):
        for name in ("exporter", "provisioner"):
            result = subprocess.run([ARGS[name], "--version"], capture_output=True, text=True,
                                    check=True)
            words = result.stdout.split()
            self.assertGreaterEqual(len(words), 2, result.stdout)
            self.assertEqual(words[1], self.version, f"{ARGS[name]} --version: {result.stdout}")

    def test_chart_app_version_is_the_project_version(self):
        self.assertEqual(str(load_yaml("manifests", "charts", "customer-instance", "Chart.yaml")
                             ["appVersion"]), self.version)

    def test_every_chart_image_is_repository_tag_pull_policy(self):
        values = load_yaml("manifests", "charts", "customer-instance", "values.yaml")
        images = {name: section["image"] for name, section in values.items()
                  if isinstance(section, dict) and "image" in section}
        self.assertEqual(set(images), {"postgres", "mosquitto", "api", "dashboard", "exporter"})
        for name, image in images.items():
            self.assertEqual(set(image), {"repository", "tag", "pullPolicy"}, name)
            tag = str(image["tag"])
            if image["repository"] in PLATFORM_REPOSITORIES:
                self.assertIn(tag, ("", self.version), f"{name}: the platform's images carry "
                                                       "the chart's appVersion")
            else:
                # pinned: a release such as 15.10-alpine or 2.0.20, not a moving major tag
                self.assertRegex(tag, r"^[0-9]+\.[0-9]+(\.[0-9]+)?(-[a-z0-9.]+)?$", name)
                self.assertNotEqual(tag.split("-")[0].count("."), 0, name)

    def test_rendered_workloads_use_versioned_images(self):
        rendered = dict(containers(render()))
        self.assertEqual(rendered["customer-abc123-exporter"]["image"],
                         f"iotistic/billing-exporter:{self.version}")
        for name, container in rendered.items():
            self.assertNotRegex(container["image"], r":latest$|^[^:]*$", name)
            self.assertEqual(container.get("imagePullPolicy"), "IfNotPresent", name)

    def test_provisioner_manifest_uses_the_versioned_image(self):
        with open(source("manifests", "provisioner", "40-deployment.yaml"),
                  encoding="utf-8") as text:
            deployment = yaml.safe_load(text)
        images = [c["image"] for _, c in containers([deployment])]
        self.assertEqual(images, [f"iotistic/provisioner:{self.version}"])

    def test_no_manifest_says_latest(self):
        for directory, _, files in os.walk(source("manifests")):
            for name in files:
                with open(os.path.join(directory, name), encoding="utf-8") as text:
                    for number, line in enumerate(text, 1):
                        self.assertNotRegex(line, r"^\s*image:.*:latest\b",
                                            f"{directory}/{name}:{number}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ARGS.update(source=sys.argv[1], exporter=sys.argv[2], provisioner=sys.argv[3])
    unittest.main(argv=sys.argv[:1], verbosity=2)
