-- Agent (servicer) availability per kf account, from servicer_status_change events:
-- 1 on duty (接待中), 2 off duty (停止接待). An account with no rows is assumed staffed.
CREATE TABLE kf_servicers (
    open_kfid       TEXT NOT NULL,
    servicer_userid TEXT NOT NULL,
    status          BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (open_kfid, servicer_userid)
);
