-- Purchases of logged-in users.
CREATE TABLE dwd_purchase
PARTITIONED BY (dt)
AS SELECT event_id, user_id, app_source, spmid, event_time, dt
FROM ods_events
WHERE event_type = 'purchase' AND user_id IS NOT NULL;
