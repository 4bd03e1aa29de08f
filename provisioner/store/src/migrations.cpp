#include "migrations.h"

#include <algorithm>
#include <pqxx/pqxx>
#include <vector>

namespace billing::provisioner {
namespace {

// Append only: a released migration never changes; later ones build on it.
const std::vector<std::string> kMigrations = {
    // 1: usage records (provisioner usage --store, the usage job in provisioner serve).
    R"sql(
CREATE TABLE usage_records (
  customer_id  text        NOT NULL,
  metric       text        NOT NULL CHECK (metric IN ('mqtt_messages', 'mqtt_bytes', 'rows_inserted',
                                                      'storage_byte_hours')),
  period_start timestamptz NOT NULL,
  period_end   timestamptz NOT NULL CHECK (period_end > period_start),
  quantity     numeric     NOT NULL CHECK (quantity >= 0 AND quantity <> 'NaN'),
  complete     boolean     NOT NULL,
  computed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, metric, period_start, period_end)
)
)sql",
    // 2: customers and their deployments (provisioner serve). The password is an Argon2id PHC
    // string; `values` are the customer's chart values (generated credentials included), from
    // which every reconciliation renders the same objects.
    R"sql(
CREATE TABLE customers (
  id            text        PRIMARY KEY CHECK (id ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(id) <= 34),
  email         text        NOT NULL,
  company_name  text        NOT NULL,
  password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
  plan          text        NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
CREATE TABLE deployments (
  customer_id        text        PRIMARY KEY REFERENCES customers (id),
  desired_state      text        NOT NULL CHECK (desired_state IN ('present', 'absent')),
  desired_generation bigint      NOT NULL DEFAULT 1 CHECK (desired_generation > 0),
  applied_generation bigint      NOT NULL DEFAULT 0,
  chart_values       jsonb       NOT NULL,
  phase              text        NOT NULL DEFAULT 'Pending'
                     CHECK (phase IN ('Pending', 'Deploying', 'Ready', 'Failed', 'Deleting', 'Deleted')),
  message            text        NOT NULL DEFAULT '',
  components         jsonb       NOT NULL DEFAULT '{}',
  attempts           integer     NOT NULL DEFAULT 0,
  next_attempt_at    timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_due ON deployments (next_attempt_at);
)sql",
    // 3: when the objects were last applied successfully; a Ready customer is applied again once
    // this is older than PROVISIONER_REAPPLY_INTERVAL (drift repair). NULL: not recorded (rows
    // from before this migration), which counts as due.
    R"sql(
ALTER TABLE deployments ADD COLUMN applied_at timestamptz;
)sql",
    // 4: metering inside the broker (the billing plugin): connection-minutes and 5 KB message
    // units.
    R"sql(
ALTER TABLE usage_records DROP CONSTRAINT usage_records_metric_check;
ALTER TABLE usage_records ADD CONSTRAINT usage_records_metric_check CHECK (metric IN
  ('mqtt_messages', 'mqtt_bytes', 'rows_inserted', 'storage_byte_hours',
   'mqtt_connection_minutes', 'mqtt_message_units'));
)sql",
    // The usage job's high-water mark per customer: every period before billed_until has been
    // computed and stored, so the job continues from there after an outage of any length. Seeded
    // from the records already stored, so an upgrade does not backfill what was billed.
    R"sql(
CREATE TABLE usage_watermarks (
  customer_id  text        PRIMARY KEY,
  billed_until timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO usage_watermarks (customer_id, billed_until)
SELECT customer_id, max(period_end) FROM usage_records GROUP BY customer_id;
)sql",
    // Finalisation: a final (invoiced) figure is never overwritten; a later recomputation that
    // differs is recorded as an adjustment of it instead.
    R"sql(
ALTER TABLE usage_records ADD COLUMN final boolean NOT NULL DEFAULT false;
ALTER TABLE usage_records ADD COLUMN finalized_at timestamptz;
CREATE TABLE usage_adjustments (
  id           bigserial   PRIMARY KEY,
  customer_id  text        NOT NULL,
  metric       text        NOT NULL,
  period_start timestamptz NOT NULL,
  period_end   timestamptz NOT NULL,
  delta        numeric     NOT NULL CHECK (delta <> 0 AND delta <> 'NaN'),
  reason       text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (customer_id, metric, period_start, period_end)
    REFERENCES usage_records (customer_id, metric, period_start, period_end)
);
CREATE INDEX usage_adjustments_period ON usage_adjustments (customer_id, metric, period_start);
)sql",
    // Customer logins: refresh tokens, stored only as their SHA-256 (a database dump cannot be
    // replayed). A rotated or logged-out token is kept, revoked, so its reuse is refused.
    R"sql(
CREATE TABLE refresh_tokens (
  token_hash  text        PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  customer_id text        NOT NULL REFERENCES customers (id),
  expires_at  timestamptz NOT NULL,
  revoked     boolean     NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_customer ON refresh_tokens (customer_id);
)sql",
    // Password resets by e-mail: the link's token stored only as its SHA-256, single use
    // (used_at), expiring; kept after use so a second use is refused.
    R"sql(
CREATE TABLE password_resets (
  token_hash  text        PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  customer_id text        NOT NULL REFERENCES customers (id),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_resets_customer ON password_resets (customer_id, created_at);
)sql",
    // 9: the usage ledger (DESIGN.md, "The usage ledger"): one entry per change a billing system
    // must see, written by triggers in the transaction that changes the figure, so no writer can
    // forget one. Sequence numbers are taken under a transaction-level advisory lock
    // (kUsageLedgerLock, migrations.h), held until commit: the next writer reads max(seq) only
    // after this one's entries are visible, so sequence order is commit order and a reader after
    // a cursor never skips an entry that commits late. Existing records start the ledger as one
    // entry each (revision 1, their current figure).
    R"sql(
CREATE TABLE usage_ledger (
  seq          bigint      PRIMARY KEY CHECK (seq > 0),
  customer_id  text        NOT NULL,
  metric       text        NOT NULL,
  period_start timestamptz NOT NULL,
  period_end   timestamptz NOT NULL,
  revision     integer     NOT NULL CHECK (revision > 0),
  kind         text        NOT NULL CHECK (kind IN ('figure', 'final', 'adjustment')),
  quantity     numeric     NOT NULL,
  delta        numeric     NOT NULL,
  complete     boolean     NOT NULL,
  final        boolean     NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (customer_id, metric, period_start, period_end, revision)
);
CREATE INDEX usage_ledger_customer ON usage_ledger (customer_id, seq);

CREATE FUNCTION usage_ledger_append(p_customer text, p_metric text, p_start timestamptz,
                                    p_end timestamptz, p_kind text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  figure numeric;
  is_complete boolean;
  is_final boolean;
  previous numeric;
  next_revision integer;
  next_seq bigint;
BEGIN
  -- Held until this transaction ends. Each statement below takes a fresh snapshot (READ
  -- COMMITTED, a volatile function), so it sees every entry committed before the lock was granted.
  PERFORM pg_advisory_xact_lock(7217004);
  SELECT r.quantity + coalesce((SELECT sum(a.delta) FROM usage_adjustments a
                                WHERE a.customer_id = r.customer_id AND a.metric = r.metric
                                  AND a.period_start = r.period_start
                                  AND a.period_end = r.period_end), 0),
         r.complete, r.final
    INTO figure, is_complete, is_final
    FROM usage_records r
   WHERE r.customer_id = p_customer AND r.metric = p_metric AND r.period_start = p_start
     AND r.period_end = p_end;
  SELECT l.quantity, l.revision + 1 INTO previous, next_revision
    FROM usage_ledger l
   WHERE l.customer_id = p_customer AND l.metric = p_metric AND l.period_start = p_start
     AND l.period_end = p_end
   ORDER BY l.revision DESC LIMIT 1;
  SELECT coalesce(max(seq), 0) + 1 INTO next_seq FROM usage_ledger;
  INSERT INTO usage_ledger (seq, customer_id, metric, period_start, period_end, revision, kind,
                            quantity, delta, complete, final)
  VALUES (next_seq, p_customer, p_metric, p_start, p_end, coalesce(next_revision, 1), p_kind,
          figure, figure - coalesce(previous, 0), is_complete, is_final);
END $$;

CREATE FUNCTION usage_records_to_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM usage_ledger_append(NEW.customer_id, NEW.metric, NEW.period_start, NEW.period_end,
    CASE WHEN TG_OP = 'UPDATE' AND NEW.final AND NOT OLD.final THEN 'final' ELSE 'figure' END);
  RETURN NULL;
END $$;
CREATE FUNCTION usage_adjustments_to_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM usage_ledger_append(NEW.customer_id, NEW.metric, NEW.period_start, NEW.period_end,
                              'adjustment');
  RETURN NULL;
END $$;
-- Only what a billing system sees: an update that changes nothing billed (computed_at) adds none.
CREATE TRIGGER usage_records_ledger_insert AFTER INSERT ON usage_records
  FOR EACH ROW EXECUTE FUNCTION usage_records_to_ledger();
CREATE TRIGGER usage_records_ledger_update AFTER UPDATE ON usage_records
  FOR EACH ROW WHEN ((OLD.quantity, OLD.complete, OLD.final) IS DISTINCT FROM
                     (NEW.quantity, NEW.complete, NEW.final))
  EXECUTE FUNCTION usage_records_to_ledger();
CREATE TRIGGER usage_adjustments_ledger_insert AFTER INSERT ON usage_adjustments
  FOR EACH ROW EXECUTE FUNCTION usage_adjustments_to_ledger();

-- After the triggers: they lock both tables until this migration commits, so a record written
-- meanwhile is either in this backfill or waits and gets its entry from the trigger.
INSERT INTO usage_ledger (seq, customer_id, metric, period_start, period_end, revision, kind,
                          quantity, delta, complete, final)
SELECT row_number() OVER (ORDER BY computed_at, customer_id, metric, period_start), customer_id,
       metric, period_start, period_end, 1, 'figure', figure, figure, complete, final
FROM (SELECT r.*, r.quantity + coalesce((SELECT sum(a.delta) FROM usage_adjustments a
                                         WHERE a.customer_id = r.customer_id
                                           AND a.metric = r.metric
                                           AND a.period_start = r.period_start
                                           AND a.period_end = r.period_end), 0) AS figure
      FROM usage_records r) AS current;
)sql",
    // 10: public signups awaiting the verification of their e-mail address (DESIGN.md, "Verified
    // signup"). Nothing is deployed and no customer exists until the link's token comes back;
    // the token is stored only as its SHA-256. A row never holds its address: several may wait
    // for one address, the first verified becomes the customer and takes the others with it,
    // and an expired one is simply gone.
    R"sql(
CREATE TABLE pending_signups (
  token_hash    text        PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  email         text        NOT NULL,
  company_name  text        NOT NULL,
  password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
  plan          text        NOT NULL,
  expires_at    timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_signups_email ON pending_signups (lower(email));
CREATE INDEX pending_signups_expiry ON pending_signups (expires_at);
)sql",
    // 11: deletes in two phases (DESIGN.md, "Deletes that can be undone"): a delete first
    // suspends (workloads at zero, the namespace and its volume kept) until purge_after, then
    // the purge (a second call, or the retention's end) deletes the namespace.
    R"sql(
ALTER TABLE deployments DROP CONSTRAINT deployments_desired_state_check,
  ADD CONSTRAINT deployments_desired_state_check
    CHECK (desired_state IN ('present', 'suspended', 'absent')),
  DROP CONSTRAINT deployments_phase_check,
  ADD CONSTRAINT deployments_phase_check
    CHECK (phase IN ('Pending', 'Deploying', 'Ready', 'Failed', 'Suspended', 'Deleting',
                     'Deleted')),
  ADD COLUMN purge_after timestamptz,
  ADD CONSTRAINT deployments_purge_after_check
    CHECK ((desired_state = 'suspended') = (purge_after IS NOT NULL));
CREATE INDEX deployments_purge_due ON deployments (purge_after) WHERE desired_state = 'suspended';
)sql",
    // 12: the operator's side (DESIGN.md, "Audit trail and admin tokens"): named admin tokens,
    // stored as their SHA-256 only and revoked rather than deleted, so the audit trail keeps
    // naming them; and the audit trail of every state-changing API call, append-only: no role,
    // the provisioner's included, can change or delete a row while these triggers stand.
    R"sql(
CREATE TABLE admin_tokens (
  name       text        PRIMARY KEY CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(name) <= 63),
  token_hash text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE TABLE audit_log (
  id          bigserial   PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  credential  text        NOT NULL,
  client      text        NOT NULL,
  method      text        NOT NULL,
  route       text        NOT NULL,
  customer_id text,
  request     jsonb       NOT NULL,
  status      integer     NOT NULL CHECK (status BETWEEN 100 AND 599),
  error       text
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
)sql",
};

}  // namespace

int LatestMigrationVersion() { return static_cast<int>(kMigrations.size()); }

void ApplyMigrations(const std::string& database_url, std::optional<int> up_to) {
  pqxx::connection connection(database_url);
  pqxx::work tx(connection);
  tx.exec("SELECT pg_advisory_xact_lock(7217001)");  // one migrator at a time
  tx.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
      "applied_at timestamptz NOT NULL DEFAULT now())");
  const auto applied =
      tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
  const int target = std::min(up_to.value_or(LatestMigrationVersion()), LatestMigrationVersion());
  for (int version = applied + 1; version <= target; ++version) {
    tx.exec(kMigrations[static_cast<std::size_t>(version - 1)]);
    tx.exec("INSERT INTO schema_migrations (version) VALUES (" + std::to_string(version) + ")");
  }
  tx.commit();
}

}  // namespace billing::provisioner
