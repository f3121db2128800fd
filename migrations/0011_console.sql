-- Console accounts and their sessions. Times are unix milliseconds (UTC).

-- People who log in to the console. `groups` is a JSON array of skill groups (intents.tsv);
-- `servicer_userid` ties an agent to the kf servicer whose tickets are theirs.
CREATE TABLE console_users (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL,          -- 'agent' | 'supervisor'
    servicer_userid TEXT,
    groups          TEXT NOT NULL,
    password_hash   TEXT NOT NULL,          -- Argon2id PHC string
    disabled_at     BIGINT,                 -- set once disabled: no login, no session
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Server-side sessions. Only the SHA-256 of the cookie's token is kept, so a copy of the
-- table opens no session.
CREATE TABLE console_sessions (
    token_hash   TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL REFERENCES console_users (name),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_name);
