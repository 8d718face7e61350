-- Device lanes carry the prefix `device:` (the terminal, the MobilePay PoS, the printer): in them
-- one sale's failing message no longer holds back another sale's. Messages still waiting from an
-- older Kasa move to the new names, so they keep their place in line.
UPDATE outbox SET lane = 'device:' || lane
 WHERE lane IN ('terminal', 'mobilepay', 'printer') AND state IN ('pending', 'parked');

-- The dispatcher asks, per lane, for the pending and parked messages of one sale.
CREATE INDEX outbox_lane_sale ON outbox (lane, sale_id, state, id);
