"""The ConsoleAI legacy schema, as SQLite DDL.

The sample generator builds databases from it, and the Dagster definitions introspect it to
show the domain tables before any source file exists.
"""

SCHEMA = """
CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    name VARCHAR(64) NOT NULL UNIQUE,
    description TEXT,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email VARCHAR(255) NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT 1,
    is_admin BOOLEAN NOT NULL DEFAULT 0,
    credit_balance NUMERIC(12, 2) NOT NULL DEFAULT 0,
    settings JSON,
    avatar BLOB,
    created_at DATETIME NOT NULL,
    last_login_at DATETIME
);
CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles(id),
    granted_at DATETIME NOT NULL,
    granted_by INTEGER REFERENCES users(id),
    PRIMARY KEY (user_id, role_id)
) WITHOUT ROWID;
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    token_hash BLOB NOT NULL UNIQUE,
    label TEXT,
    scopes JSON NOT NULL,
    created_at DATETIME NOT NULL,
    expires_at DATETIME,
    revoked BOOLEAN NOT NULL DEFAULT 0
);
CREATE TABLE workflows (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    definition JSON NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    created_at DATETIME NOT NULL,
    updated_at DATETIME,
    UNIQUE (owner_id, name)
);
CREATE TABLE workflow_runs (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL REFERENCES workflows(id),
    triggered_by INTEGER REFERENCES users(id),
    status TEXT NOT NULL,
    started_at DATETIME NOT NULL,
    finished_at DATETIME,
    duration_seconds REAL,
    cost_usd NUMERIC(10, 4),
    output JSON
);
CREATE INDEX idx_workflow_runs_workflow ON workflow_runs (workflow_id, started_at);
CREATE TABLE inventory_items (
    sku VARCHAR(32) PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 0,
    unit_price NUMERIC(12, 2) NOT NULL,
    weight_kg REAL,
    discontinued BOOLEAN NOT NULL DEFAULT 0,
    updated_on DATE NOT NULL
);
CREATE TABLE ec2_instances (
    instance_id VARCHAR(19) PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    instance_type TEXT NOT NULL,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    launched_at DATETIME NOT NULL,
    hourly_cost NUMERIC(8, 4) NOT NULL,
    cpu_utilization REAL,
    tags JSON,
    ebs_optimized BOOLEAN NOT NULL DEFAULT 0
);
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    occurred_at DATETIME NOT NULL,
    actor_id INTEGER REFERENCES users(id),
    action TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    ip_address TEXT,
    payload JSON,
    success BOOLEAN NOT NULL
);
CREATE INDEX idx_audit_events_actor ON audit_events (actor_id, occurred_at);
CREATE VIEW active_users AS SELECT id, email FROM users WHERE is_active = 1;
"""
