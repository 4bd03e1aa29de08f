#!/usr/bin/python3
"""A bill cannot be changed from outside the tenant (ctest: monitoring_billing_identity_e2e).

  billing_identity_e2e.py PROMETHEUS PROVISIONER PROMETHEUS_YML

A real Prometheus runs the billing-exporter job of manifests/prometheus/prometheus.yml unchanged
(its kubernetes_sd_configs replaced by static targets that carry the __meta_kubernetes_* labels
discovery would give, so the relabelling rules run as in a cluster) against three targets that
all publish billing series labelled customer_id="victim":
  - the victim's own exporter, in namespace customer-victim;
  - another tenant's exporter posing as the victim, in namespace customer-evil;
  - an exporter-looking Service in namespace default posing as the victim.
The victim's counters then move by known amounts and the impostors' by huge ones, and
`provisioner usage` (what the usage job runs) must bill the victim exactly the known amounts:
the impostor tenant is billed to itself, the outsider is never scraped.
"""
import http.server
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

import yaml

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import monitoring_check  # noqa: E402  (beside this file)

PERIOD = 5  # seconds: short billing periods, so the test waits seconds, not hours
START = 1700000000  # the exporters' start and statistics-reset times (constant: no resets)
ARGS = {}


class Exporter:
    """Serves billing series for customer_id="victim" with values the test sets."""

    def __init__(self):
        self.values = {"rows": 1000, "messages": 500, "bytes": 50000, "size": 1_000_000}
        self.lock = threading.Lock()
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = exporter.page().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def add(self, **deltas):
        with self.lock:
            for key, delta in deltas.items():
                self.values[key] += delta

    def page(self):
        with self.lock:
            v = dict(self.values)
        c = 'customer_id="victim"'
        db = c + ',database="app"'
        return (
            "# TYPE iotistic_postgres_rows_inserted_total counter\n"
            f"iotistic_postgres_rows_inserted_total{{{db}}} {v['rows']}\n"
            f"iotistic_postgres_stats_reset_timestamp_seconds{{{db}}} {START}\n"
            f"iotistic_postgres_start_time_seconds{{{db}}} {START}\n"
            f"iotistic_postgres_database_size_bytes{{{db}}} {v['size']}\n"
            "# TYPE iotistic_mqtt_broker_publish_messages_received_total counter\n"
            f"iotistic_mqtt_broker_publish_messages_received_total{{{c}}} {v['messages']}\n"
            "# TYPE iotistic_mqtt_broker_bytes_received_total counter\n"
            f"iotistic_mqtt_broker_bytes_received_total{{{c}}} {v['bytes']}\n"
            f"iotistic_mqtt_broker_start_time_seconds{{{c}}} {START}\n")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class BillingIdentity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="billing-identity-")
        cls.victim, cls.tenant_impostor, cls.outsider = Exporter(), Exporter(), Exporter()
        job, _, _ = monitoring_check.static_job(ARGS["prometheus_yml"], cls.victim.address,
                                                "victim")
        job["static_configs"] = [
            monitoring_check.discovered_target(cls.victim.address, "victim"),
            monitoring_check.discovered_target(cls.tenant_impostor.address, "victim",
                                               namespace="customer-evil"),
            monitoring_check.discovered_target(cls.outsider.address, "victim",
                                               namespace="default"),
        ]
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
        config = os.path.join(cls.dir, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as f:
            yaml.safe_dump({"scrape_configs": [job]}, f, sort_keys=False)
        cls.port = free_port()
        cls.url = f"http://127.0.0.1:{cls.port}"
        cls.log = open(os.path.join(cls.dir, "prometheus.log"), "w", encoding="utf-8")
        cls.prometheus = subprocess.Popen(
            [ARGS["prometheus"], f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(cls.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{cls.port}"],
            stdout=cls.log, stderr=subprocess.STDOUT)

        def ready():
            try:
                return urllib.request.urlopen(cls.url + "/-/ready", timeout=2).status == 200
            except OSError:
                return False
        wait_for(ready, "Prometheus ready")

    @classmethod
    def tearDownClass(cls):
        cls.prometheus.terminate()
        cls.prometheus.wait(timeout=30)
        cls.log.close()
        for exporter in (cls.victim, cls.tenant_impostor, cls.outsider):
            exporter.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def query(self, promql):
        answer = get_json(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        return answer["data"]["result"]

    def samples(self, namespace):
        """How many samples of the rows counter Prometheus holds from that namespace's target."""
        result = self.query(
            f'count_over_time(iotistic_postgres_rows_inserted_total{{namespace="{namespace}"}}[5m])')
        return int(float(result[0]["value"][1])) if result else 0

    def value(self, namespace, metric):
        result = self.query(f'{metric}{{namespace="{namespace}"}}')
        return float(result[0]["value"][1]) if result else None

    def usage(self, start, end, customer=None):
        command = [ARGS["provisioner"], "usage", "--prometheus", self.url, "--from", str(start),
                   "--to", str(end), "--period", f"{PERIOD}s", "--format", "json"]
        if customer:
            command += ["--customer", customer]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def test_only_the_victims_own_exporter_moves_the_victims_bill(self):
        # Both customer namespaces are scraped; the outsider is dropped by the relabelling.
        wait_for(lambda: self.samples("customer-victim") >= 2 and
                 self.samples("customer-evil") >= 2, "two scrapes of each customer target")
        targets = get_json(self.url + "/api/v1/targets")["data"]
        active = sorted(t["labels"].get("namespace", "") for t in targets["activeTargets"])
        self.assertEqual(active, ["customer-evil", "customer-victim"])
        dropped = [t["discoveredLabels"]["__meta_kubernetes_namespace"]
                   for t in targets["droppedTargets"]]
        self.assertEqual(dropped, ["default"])
        # The identity is the namespace's, and the exporter's own label is gone.
        self.assertEqual(
            sorted(r["metric"]["customer_id"]
                   for r in self.query("iotistic_postgres_rows_inserted_total")),
            ["evil", "victim"])
        self.assertEqual(self.query('{exported_customer_id!=""}'), [])

        # From the next period boundary on, the victim's counters move by known amounts, the
        # impostors' by a million each.
        start = (int(time.time()) // PERIOD + 1) * PERIOD
        wait_for(lambda: time.time() >= start + 1.5, "the first period to begin", timeout=10)
        self.victim.add(rows=250, messages=40, bytes=4000)
        for impostor in (self.tenant_impostor, self.outsider):
            impostor.add(rows=10**6, messages=10**6, bytes=10**6, size=10**9)
        wait_for(lambda: self.value("customer-victim",
                                    "iotistic_postgres_rows_inserted_total") == 1250 and
                 self.value("customer-evil", "iotistic_postgres_rows_inserted_total") == 1001000,
                 "the new values scraped")
        end = (int(time.time()) // PERIOD + 1) * PERIOD + PERIOD
        # Closed periods only, with samples after their end.
        wait_for(lambda: time.time() >= end + 3, "the last period to close", timeout=30)

        records = self.usage(start, end, customer="victim")
        self.assertTrue(records, "no usage records for the victim")
        totals = {}
        for record in records:
            self.assertEqual(record["customer_id"], "victim")
            totals[record["metric"]] = totals.get(record["metric"], 0) + record["quantity"]
        self.assertEqual(totals.get("rows_inserted"), 250, records)
        self.assertEqual(totals.get("mqtt_messages"), 40, records)
        self.assertEqual(totals.get("mqtt_bytes"), 4000, records)
        # 1,000,000 bytes for the whole window, in byte-hours (printed to 3 decimals): the
        # impostors' 10^9 never counted.
        self.assertTrue(math.isclose(totals.get("storage_byte_hours", 0),
                                     1_000_000 * (end - start) / 3600, rel_tol=1e-5), records)

        # Every customer billed: the victim and the impostor tenant, who pays for its own counts;
        # nobody is billed from the default namespace.
        everyone = self.usage(start, end)
        self.assertEqual(sorted({r["customer_id"] for r in everyone}), ["evil", "victim"])
        evil_rows = sum(r["quantity"] for r in everyone
                        if r["customer_id"] == "evil" and r["metric"] == "rows_inserted")
        self.assertEqual(evil_rows, 10**6)


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    ARGS.update(prometheus=argv[1], provisioner=argv[2], prometheus_yml=argv[3])
    program = unittest.main(argv=[argv[0]] + argv[4:], exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
