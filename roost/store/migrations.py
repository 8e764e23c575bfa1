"""Versioned, forward-only migrations, tracked in SQLite's `user_version`.

Append a new script to `MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE apps (
        name        TEXT PRIMARY KEY,
        mode        TEXT NOT NULL,
        desired     TEXT NOT NULL DEFAULT 'running',
        config      TEXT NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE deployments (
        id            TEXT PRIMARY KEY,
        app           TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        seq           INTEGER NOT NULL,
        status        TEXT NOT NULL,
        digest        TEXT NOT NULL,
        message       TEXT NOT NULL DEFAULT '',
        config        TEXT NOT NULL,
        error         TEXT NOT NULL DEFAULT '',
        created_at    REAL NOT NULL,
        build_seconds REAL,
        UNIQUE (app, seq)
    );
    CREATE TABLE traffic (
        app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        deployment  TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        weight      INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100),
        PRIMARY KEY (app, deployment)
    );
    CREATE TABLE releases (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        deployment  TEXT NOT NULL,
        at          REAL NOT NULL
    );
    CREATE TABLE instances (
        id          TEXT PRIMARY KEY,
        app         TEXT NOT NULL,
        deployment  TEXT NOT NULL,
        pid         INTEGER,
        pgid        INTEGER,
        cgroup      TEXT NOT NULL DEFAULT '',
        state       TEXT NOT NULL,
        started_at  REAL NOT NULL,
        stopped_at  REAL,
        reason      TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX instances_live ON instances(state);
    CREATE TABLE events (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       REAL NOT NULL,
        app      TEXT,
        kind     TEXT NOT NULL,
        message  TEXT NOT NULL,
        data     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_by_app ON events(app, id);
    CREATE TABLE users (
        name        TEXT PRIMARY KEY,
        created_at  REAL NOT NULL
    );
    CREATE TABLE tokens (
        name          TEXT PRIMARY KEY,
        hash          TEXT NOT NULL,
        created_at    REAL NOT NULL,
        last_used_at  REAL
    );
    CREATE TABLE domains (
        host  TEXT PRIMARY KEY,
        app   TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE
    );
    """,
    # 2: where each deployment's build put its code and virtual environment
    """
    ALTER TABLE deployments ADD COLUMN code_dir TEXT NOT NULL DEFAULT '';
    ALTER TABLE deployments ADD COLUMN venv_dir TEXT NOT NULL DEFAULT '';
    """,
    # 3: encrypted secrets (the store sees only ciphertext)
    """
    CREATE TABLE secrets (
        app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        value       TEXT NOT NULL,
        updated_at  REAL NOT NULL,
        PRIMARY KEY (app, name)
    );
    """,
    # 4: settings changed with `roost scale`, applied on top of every deployment's roost.toml
    """
    ALTER TABLE apps ADD COLUMN overrides TEXT NOT NULL DEFAULT '{}';
    """,
    # 5: where the push took each deployment's settings from (JSON: setting -> source), for `roost info`
    """
    ALTER TABLE deployments ADD COLUMN sources TEXT NOT NULL DEFAULT '{}';
    """,
    # 6: roles: what each token may do (roost/grants.py's text); tokens made before are admins.
    # `user`: a token made by a password user (`roost login`) acts with that user's current grants
    """
    ALTER TABLE tokens ADD COLUMN grants TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE tokens ADD COLUMN user TEXT;
    """,
    # 7: quotas per owner (an app or a glob of apps) and the audit trail of the admin API
    """
    CREATE TABLE quotas (
        pattern     TEXT PRIMARY KEY,
        instances   INTEGER,
        memory      INTEGER,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE audit (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       REAL NOT NULL,
        app      TEXT,
        user     TEXT NOT NULL,
        kind     TEXT NOT NULL,
        address  TEXT NOT NULL,
        method   TEXT NOT NULL,
        path     TEXT NOT NULL,
        action   TEXT NOT NULL,
        status   INTEGER NOT NULL
    );
    CREATE INDEX audit_by_app ON audit(app, id);
    CREATE INDEX audit_by_user ON audit(user, id);
    CREATE INDEX audit_by_time ON audit(at);
    """,
    # 8: branch aliases: a stable preview host per (app, alias) that follows the newest deployment
    # pushed with it (`roost push --alias`); gone with the app
    """
    CREATE TABLE aliases (
        app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        deployment  TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        updated_at  REAL NOT NULL,
        PRIMARY KEY (app, name)
    );
    """,
    # 9: certificates: each custom domain's (ACME or supplied), its state and renewal schedule; a
    # domain may belong to no app (the admin API's own name, app NULL). SQLite cannot drop NOT
    # NULL in place: domains is rebuilt first.
    """
    CREATE TABLE domains_next (
        host  TEXT PRIMARY KEY,
        app   TEXT REFERENCES apps(name) ON DELETE CASCADE
    );
    INSERT INTO domains_next (host, app) SELECT host, app FROM domains;
    DROP TABLE domains;
    ALTER TABLE domains_next RENAME TO domains;
    CREATE TABLE certificates (
        host          TEXT PRIMARY KEY REFERENCES domains(host) ON DELETE CASCADE,
        source        TEXT NOT NULL,
        state         TEXT NOT NULL,
        not_before    REAL,
        not_after     REAL,
        issued_at     REAL,
        failures      INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT NOT NULL DEFAULT '',
        next_attempt  REAL,
        redirect      INTEGER NOT NULL DEFAULT 1,
        hsts          INTEGER NOT NULL DEFAULT 0
    );
    """,
)
