-- Clicks from the iOS app.
CREATE TABLE dwd_click_ios
PARTITIONED BY (dt, hour)
AS SELECT event_id, mid, event_time, spmid, dt, hour
FROM ods_events
WHERE event_type = 'click' AND app_source = 'ios';
