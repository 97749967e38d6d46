-- Clicks from the Android app, by day and hour.
CREATE TABLE dwd_click_android
PARTITIONED BY (dt, hour)
AS SELECT event_id, mid, event_time, spmid, dt, hour
FROM ods_events
WHERE event_type = 'click' AND app_source = 'android';
