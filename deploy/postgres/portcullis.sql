-- The database and role authn's session store uses when replicas share PostgreSQL
-- (sessions.store.type: postgres). Run once as a superuser, one statement at a time
-- (CREATE DATABASE cannot run inside a transaction):
--   psql -U postgres -f deploy/postgres/portcullis.sql
-- then give the role a password (psql: \password portcullis) and put the DSN in the file
-- sessions.store.config.dsn_file names:
--   postgres://portcullis:<password>@db.example.com:5432/portcullis?sslmode=verify-full
--
-- The role owns only its database, so authn can create and migrate its tables there (the
-- schema is migrated when authn starts) and nothing else; it is no superuser and cannot
-- create roles or databases. Nobody else may connect to the database.
CREATE ROLE portcullis LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE portcullis OWNER portcullis;
REVOKE ALL ON DATABASE portcullis FROM PUBLIC;
