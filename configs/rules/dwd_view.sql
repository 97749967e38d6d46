-- Every page view, by day.
CREATE TABLE dwd_view
PARTITIONED BY (dt)
AS SELECT event_id, mid, user_id, spmid, platform, dt
FROM ods_events
WHERE event_type = 'view';
