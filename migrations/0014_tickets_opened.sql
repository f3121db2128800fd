-- The supervisor dashboard reads the tickets opened in a period.
CREATE INDEX tickets_opened ON tickets (opened_at);
