-- Customers and their purchase history, for customer tiers (see src/crm/).

-- One customer per kf shopper (external_userid) or Official Account follower (openid); the
-- unionid, when WeChat or the shop's import tells it, links the two and the imported history.
CREATE TABLE crm_customers (
    id              TEXT PRIMARY KEY,
    external_userid TEXT UNIQUE,
    openid          TEXT UNIQUE,
    unionid         TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX crm_customers_unionid ON crm_customers (unionid);

-- Purchase history from `kefu crm import`, keyed as the file keyed it: by external_userid
-- when the row had one, else by unionid. `unionid` is also kept on rows keyed by
-- external_userid when the file gave both, so either key finds the row.
CREATE TABLE crm_purchases (
    id_kind       TEXT NOT NULL,      -- 'external_userid' | 'unionid'
    id_value      TEXT NOT NULL,
    unionid       TEXT,
    name          TEXT,
    tags          TEXT NOT NULL,      -- JSON array of tag names
    orders        BIGINT NOT NULL,    -- lifetime orders
    spent_fen     BIGINT NOT NULL,    -- lifetime spend in fen (0.01 yuan)
    last_order_at BIGINT,             -- unix ms; NULL without orders or when not given
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,    -- changes only when the row's contents change
    PRIMARY KEY (id_kind, id_value)
);
CREATE INDEX crm_purchases_unionid ON crm_purchases (unionid);

-- RFM quintile boundaries over the customers with orders, recomputed by every import: the
-- smallest value that scores 2, 3, 4 and 5 in each dimension (NULL: no value scores that).
-- recency is the day of the last order (days since the epoch, China time), frequency the
-- orders, monetary the fen spent.
CREATE TABLE crm_rfm_bounds (
    dimension   TEXT PRIMARY KEY,     -- 'recency' | 'frequency' | 'monetary'
    score2      BIGINT,
    score3      BIGINT,
    score4      BIGINT,
    score5      BIGINT,
    population  BIGINT NOT NULL,
    computed_at BIGINT NOT NULL
);
