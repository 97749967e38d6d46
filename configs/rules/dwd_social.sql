-- Shares and likes, partitioned by type.
CREATE TABLE dwd_social
PARTITIONED BY (dt, event_type)
AS SELECT event_id, mid, user_id, spmid, dt, event_type
FROM ods_events
WHERE event_type IN ('share', 'like');
