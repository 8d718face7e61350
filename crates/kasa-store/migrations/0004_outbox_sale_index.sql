-- The dispatcher's lane checks are served by outbox_lane (lane, state, id):
-- a lane holds few live messages, so filtering them by sale costs nothing,
-- while the wider (lane, sale_id, state, id) index cost a write on every
-- enqueue and finish. What looks messages up by sale alone (a sale's detail
-- view, recovery after a restart) gets the narrow index it needs.
DROP INDEX IF EXISTS outbox_lane_sale;
CREATE INDEX outbox_sale ON outbox (sale_id);
