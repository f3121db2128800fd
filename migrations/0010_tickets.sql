-- Tickets: kefu's own record of every chat the bot could not finish, with SLA clocks,
-- routing to agents and an append-only history. Times are unix milliseconds (UTC).

-- Agents are the kf servicers. `groups` is a JSON array of skill groups (intents.tsv).
CREATE TABLE agents (
    servicer_userid  TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    groups           TEXT NOT NULL,
    capacity         BIGINT NOT NULL,
    senior           BIGINT NOT NULL,   -- 0 / 1
    on_duty          BIGINT NOT NULL,   -- 0 / 1
    active           BIGINT NOT NULL,   -- 0 once removed: history still names them
    last_assigned_at BIGINT,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE tickets (
    id                 TEXT PRIMARY KEY,
    channel            TEXT NOT NULL,          -- 'kf' | 'mp'
    account            TEXT NOT NULL,          -- open_kfid (kf) or app id (mp)
    external_userid    TEXT NOT NULL,          -- or the openid
    -- channel/account/customer while the ticket is open, NULL once resolved or closed: one
    -- open ticket per customer and channel, enforced by the unique index.
    open_key           TEXT,
    customer_name      TEXT,
    status             TEXT NOT NULL,
    reason             TEXT NOT NULL,          -- why it was opened
    intent             TEXT NOT NULL,
    grp                TEXT NOT NULL,          -- the intent's skill group
    priority           BIGINT NOT NULL,        -- 0 urgent .. 3 low
    tier               TEXT NOT NULL,          -- snapshotted when opened
    tier_reasons       TEXT NOT NULL,          -- JSON array, snapshotted when opened
    assignee           TEXT,
    assigned_at        BIGINT,
    -- Who served the customer last and when (kept when the ticket is reopened), for sending
    -- a returning customer back to the same agent.
    last_assignee      TEXT,
    last_served_at     BIGINT,
    -- The agent who let the ticket go idle, passed over for it until idle_until.
    idle_agent         TEXT,
    idle_until         BIGINT,
    opened_at          BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    last_message       TEXT,
    last_customer_at   BIGINT,
    last_agent_at      BIGINT,
    first_response_at  BIGINT,
    -- Due times (absolute). next_response_due is set while a shopper message waits for an
    -- agent. While pending_customer the clocks stop: paused_at is set, and on resume each
    -- due time moves by the business time that passed.
    sla_started_at     BIGINT NOT NULL,        -- opened, or reopened: when the clocks began
    waiting_since      BIGINT,                 -- the shopper's first unanswered message
    first_response_due BIGINT,
    next_response_due  BIGINT,
    resolution_due     BIGINT NOT NULL,
    paused_at          BIGINT,
    resolved_at        BIGINT,
    closed_at          BIGINT,
    csat               TEXT,                   -- 'good' | 'ok' | 'bad'
    csat_agent         TEXT,
    csat_at            BIGINT,
    version            BIGINT NOT NULL         -- bumped on every change: writes check it
);
CREATE UNIQUE INDEX tickets_open_key ON tickets (open_key);
CREATE INDEX tickets_queue ON tickets (status, priority, first_response_due);
CREATE INDEX tickets_customer ON tickets (channel, account, external_userid, opened_at);
CREATE INDEX tickets_assignee ON tickets (assignee, status);

-- The messages of a ticket: the shopper's, the agents' and the bot's.
CREATE TABLE ticket_messages (
    id         TEXT PRIMARY KEY,
    ticket_id  TEXT NOT NULL REFERENCES tickets (id),
    msgid      TEXT,                           -- kf msgid or outbox id
    author     TEXT NOT NULL,                  -- 'customer' | 'agent' | 'bot'
    agent      TEXT,
    content    TEXT NOT NULL,
    intent     TEXT,
    confidence DOUBLE PRECISION,
    at         BIGINT NOT NULL
);
CREATE INDEX ticket_messages_ticket ON ticket_messages (ticket_id, at);
CREATE INDEX ticket_messages_msgid ON ticket_messages (msgid);

-- Append-only history: every change with who made it and when.
CREATE TABLE ticket_events (
    id        TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,                   -- 'kefu', 'customer', an agent id, 'admin'
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL                    -- JSON
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at);

-- An SLA warning or breach is recorded once per ticket, target and clock (the clock's
-- start: sla_started_at, or waiting_since for next_response), whichever replica sees it
-- first: the primary key decides.
CREATE TABLE sla_marks (
    ticket_id  TEXT NOT NULL REFERENCES tickets (id),
    target     TEXT NOT NULL,                  -- 'first_response' | 'next_response' | 'resolution'
    kind       TEXT NOT NULL,                  -- 'warning' | 'breach'
    started_at BIGINT NOT NULL,
    due_at     BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, target, kind, started_at)
);

-- Routing passes take turns (replicas too): each starts by updating this one row.
CREATE TABLE ticket_routing (
    id     BIGINT PRIMARY KEY,
    passes BIGINT NOT NULL
);
INSERT INTO ticket_routing (id, passes) VALUES (1, 0);
