-- Video plays on the web, with the play duration taken from props.
CREATE TABLE dwd_play_web
PARTITIONED BY (dt, hour)
AS SELECT event_id, mid, json_get_str(props, 'duration_ms') AS duration_ms, dt, hour
FROM ods_events
WHERE event_type = 'play' AND app_source IN ('web', 'h5');
