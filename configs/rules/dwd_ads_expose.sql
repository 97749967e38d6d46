-- Ad impressions (spm starts with ads.).
CREATE TABLE dwd_ads_expose
PARTITIONED BY (dt, hour)
AS SELECT event_id, mid, spmid, hash_bucket(mid, 16) AS mid_bucket, dt, hour
FROM ods_events
WHERE event_type = 'expose' AND spmid LIKE 'ads.%';
