-- One shopper's outgoing rows must reach WeCom in the order they were written: an
-- acknowledgement before the move to the pending pool, or WeCom refuses the acknowledgement
-- (95018). `chat` names the conversation a row speaks to (open_kfid and external_userid);
-- `seq` numbers its rows in the order they were written. Rows without a chat (alerts to the
-- supervisors' robot, rows written before this migration) have no order to keep.
-- The unique index makes two writers that picked the same number fail instead of racing.
ALTER TABLE outbox ADD COLUMN chat TEXT;
ALTER TABLE outbox ADD COLUMN seq BIGINT;
CREATE UNIQUE INDEX outbox_chat_seq ON outbox (chat, seq);
