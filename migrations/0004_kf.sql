-- WeCom Customer Service (kf): pulled messages, cursors, sessions, customers, and the outbox.

-- Where each kf account's pull stands; written in the same transaction as the messages.
CREATE TABLE kf_cursors (
    open_kfid  TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Every message and event pulled with kf/sync_msg, once (msgid is WeCom's).
CREATE TABLE kf_messages (
    msgid           TEXT PRIMARY KEY,
    open_kfid       TEXT NOT NULL,
    external_userid TEXT,
    origin          BIGINT NOT NULL,
    msgtype         TEXT NOT NULL,
    content         TEXT,
    menu_id         TEXT,
    event_type      TEXT,
    send_time       BIGINT NOT NULL,
    raw_json        TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    -- 'answered' | 'unresolved' (a person must take it) | 'agent' (a person holds the
    -- session) | 'recorded' (events, agent messages, history)
    status          TEXT NOT NULL,
    intent          TEXT,
    confidence      DOUBLE PRECISION,
    reply_id        TEXT
);
CREATE INDEX kf_messages_status ON kf_messages (status, received_at);
CREATE INDEX kf_messages_customer ON kf_messages (open_kfid, external_userid, send_time);

-- Session state as kefu last knew it (0 new, 1 bot, 2 pool, 3 agent, 4 ended).
CREATE TABLE kf_sessions (
    open_kfid       TEXT NOT NULL,
    external_userid TEXT NOT NULL,
    state           BIGINT NOT NULL,
    servicer_userid TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (open_kfid, external_userid)
);

-- Customer profiles from kf/customer/batchget and externalcontact/get, cached.
CREATE TABLE kf_customers (
    external_userid TEXT PRIMARY KEY,
    nickname        TEXT,
    tags            TEXT NOT NULL,   -- JSON array of tag names
    tier            TEXT,            -- 'vip' | 'svip' | NULL
    fetched_at      BIGINT NOT NULL
);

-- Everything kefu sends is written here first and sent by the outbox worker.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,   -- also the kf msgid of the message sent
    api             TEXT NOT NULL,      -- 'send_msg' | 'send_msg_on_event' | 'service_state_trans'
    payload         TEXT NOT NULL,
    source_msgid    TEXT,
    status          TEXT NOT NULL,      -- 'pending' | 'sending' | 'sent' | 'failed'
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
