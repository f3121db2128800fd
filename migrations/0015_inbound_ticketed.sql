-- The ticket watch looked for unanswered Official Account messages without a ticket by
-- walking every unresolved message from the oldest and skipping those a ticket already held:
-- the walk grew with every message ever taken in, inside the transaction that holds the
-- write lock intake waits on. A message now says when a ticket took it in, and only the
-- messages still waiting are indexed, so the watch no longer walks those already taken in.
-- Messages a ticket holds already are marked with their receive time (when they were taken
-- in was not recorded).
ALTER TABLE inbound_messages ADD COLUMN ticketed_at BIGINT;
UPDATE inbound_messages SET ticketed_at = received_at
WHERE status = 'unresolved' AND id IN (SELECT msgid FROM ticket_messages);
DROP INDEX inbound_messages_unresolved;
-- The channel leads, as in the watch's query: with the primary key's index also matching
-- `channel = ?`, SQLite's planner (which has no statistics here) took the primary key and
-- scanned every message of the channel.
CREATE INDEX inbound_messages_waiting ON inbound_messages (channel, received_at, id)
WHERE status = 'unresolved' AND ticketed_at IS NULL;
