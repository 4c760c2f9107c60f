-- Move Smart example queries: the seed's query first, then the "insights".
-- They run unchanged in Redshift (external schema dev_smartcity over Glue) and in the
-- embedded DuckDB catalog of `movesmart query`; movesmart_dagster_tests/test_catalog_sql.py
-- runs every one of them on generated data.

-- The seed's query.
select * from dev_smartcity.gps_data;

-- Per vehicle and day: readings, average and top speed.
select deviceid, event_date, count(*) as readings,
       round(avg(speed), 1) as avg_speed_kmh, max(speed) as max_speed_kmh
from dev_smartcity.vehicle_data
group by deviceid, event_date
order by event_date, deviceid;

-- Hourly average GPS speed by vehicle type.
select date_trunc('hour', "timestamp") as hour, vehicletype,
       count(*) as fixes, round(avg(speed), 1) as avg_speed_kmh
from dev_smartcity.gps_data
group by 1, 2
order by 1, 2;

-- Daily weather along the route.
select event_date, count(*) as readings,
       round(avg(temperature), 1) as avg_temperature_c,
       round(max(precipitation), 1) as max_precipitation_mm,
       round(avg(airqualityindex), 0) as avg_aqi
from dev_smartcity.weather_data
group by event_date
order by event_date;

-- Emergency incidents by type and status.
select "type", status, count(distinct incidentid) as incidents
from dev_smartcity.emergency_data
group by "type", status
order by incidents desc, "type", status;

-- Where vehicles were when emergencies were reported (nested location fields).
select e.event_date, e."type", e.location.latitude as latitude, e.location.longitude as longitude
from dev_smartcity.emergency_data e
where e.status = 'Active'
order by e."timestamp" desc
limit 20;

-- Records rejected by validation, by topic and reason.
select kafka_topic, reason, count(*) as records
from dev_smartcity.quarantine
group by kafka_topic, reason
order by records desc;
