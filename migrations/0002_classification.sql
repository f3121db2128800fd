-- What the classifier made of each text message, for tickets and for the figures supervisors
-- read (auto-answer rate by intent).
ALTER TABLE inbound_messages ADD COLUMN intent TEXT;
ALTER TABLE inbound_messages ADD COLUMN confidence DOUBLE PRECISION;
ALTER TABLE inbound_messages ADD COLUMN reply_id TEXT;
