-- Two tenants on the compose MariaDB: each its own user and database (run once, on an empty volume).
CREATE DATABASE acme_my;
CREATE DATABASE globex_my;
CREATE USER 'acme'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('acme-secret');
CREATE USER 'globex'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('globex-secret');
GRANT ALL PRIVILEGES ON acme_my.* TO 'acme'@'%';
GRANT ALL PRIVILEGES ON globex_my.* TO 'globex'@'%';
