-- Suggested replies shown to console agents, and what became of each: accepted as is,
-- edited before sending, or dismissed (also when the agent sent something else).
-- Times are unix milliseconds (UTC).
CREATE TABLE suggestions (
    ticket_id  TEXT NOT NULL REFERENCES tickets (id),
    message_id TEXT NOT NULL,          -- the shopper's ticket message they answer
    reply_id   TEXT NOT NULL,
    intent     TEXT NOT NULL,
    slot       BIGINT NOT NULL,        -- 1..3, as shown
    agent      TEXT NOT NULL,          -- the console user they were shown to first
    shown_at   BIGINT NOT NULL,
    outcome    TEXT,                   -- NULL while open; 'accepted' | 'edited' | 'dismissed' | 'passed'
    decided_by TEXT,
    decided_at BIGINT,
    PRIMARY KEY (ticket_id, message_id, reply_id)
);
CREATE INDEX suggestions_shown ON suggestions (shown_at);

-- The library reply an agent's message came from (accepted or edited), NULL when the agent
-- wrote it: recurring agent-written answers are candidates for the library.
ALTER TABLE ticket_messages ADD COLUMN reply_id TEXT;

-- The console's live feed reads the tickets changed since its last look.
CREATE INDEX tickets_updated ON tickets (updated_at);
