-- The WeCom access token, shared by every replica on PostgreSQL (one refresher at a time
-- under a row lock). On SQLite a single process keeps it in memory and this stays unused.
CREATE TABLE wecom_tokens (
    corp_id       TEXT PRIMARY KEY,
    access_token  TEXT NOT NULL,
    good_until_ms BIGINT NOT NULL
);
