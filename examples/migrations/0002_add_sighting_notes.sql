-- Watchers may add a note to a sighting. Dialect-neutral SQL: it runs on SQLite, Postgres and MySQL/MariaDB.
-- migrate:up
alter table birdwatch_sightings add note varchar(200);

-- migrate:down
alter table birdwatch_sightings drop column note;
