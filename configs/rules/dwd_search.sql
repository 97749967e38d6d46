-- Searches, with the page the user came from.
CREATE TABLE dwd_search
PARTITIONED BY (dt, hour)
AS SELECT event_id, mid, url_param(json_get_str(props, 'url'), 'from') AS came_from, dt, hour
FROM ods_events
WHERE event_type = 'search';
