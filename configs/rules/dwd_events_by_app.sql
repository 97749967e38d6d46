-- All events, one partition per day and app.
CREATE TABLE dwd_events_by_app
PARTITIONED BY (dt, app_source)
AS SELECT event_id, event_type, mid, upper(platform) AS platform, dt, app_source
FROM ods_events;
