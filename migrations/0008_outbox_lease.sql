-- A claimed (`sending`) outbox row holds a lease until `lease_until` (unix ms). A sender that
-- dies or cannot record the result leaves the row behind; once the lease has run out any
-- sender may take it again, and a replica starting up no longer resets rows another live
-- replica is sending. Rows claimed before this migration have no lease: they count as expired.
ALTER TABLE outbox ADD COLUMN lease_until BIGINT;
