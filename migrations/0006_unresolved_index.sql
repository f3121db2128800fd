-- The status index served one purpose: finding the messages that wait for a person. Only
-- those are indexed now, so the usual message (answered, or an event or image recorded as
-- received) costs one index fewer to store.
DROP INDEX inbound_messages_status;
CREATE INDEX inbound_messages_unresolved ON inbound_messages (received_at) WHERE status = 'unresolved';
