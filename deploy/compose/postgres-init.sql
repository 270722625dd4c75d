-- Two tenants on the compose PostgreSQL: each its own login and database (run once, on an empty volume).
CREATE ROLE acme LOGIN PASSWORD 'acme-secret';
CREATE ROLE globex LOGIN PASSWORD 'globex-secret';
CREATE DATABASE acme_pg OWNER acme;
CREATE DATABASE globex_pg OWNER globex;
REVOKE CONNECT ON DATABASE acme_pg FROM PUBLIC;
REVOKE CONNECT ON DATABASE globex_pg FROM PUBLIC;
