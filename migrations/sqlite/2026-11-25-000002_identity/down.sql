DROP TABLE audit_log;
DROP TABLE rate_limit_windows;
DROP TABLE login_failures;
DROP TABLE refresh_tokens;
DROP TABLE api_clients;
DROP TABLE user_areas;
DROP TABLE users;
DROP TABLE organisations;
