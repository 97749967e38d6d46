-- Everything that happens on TVs.
CREATE TABLE dwd_tv
PARTITIONED BY (dt)
AS SELECT event_id, event_type, app_source, spmid, dt
FROM ods_events
WHERE platform = 'tv';
