"""The state's schema on each backend, as versioned migrations.

Each backend has its own list; an entry moves the schema one version up and is never edited
once shipped. SQLite keeps its version in `PRAGMA user_version`, PostgreSQL in the
`schema_version` table. PostgreSQL's first version is SQLite's fourth as one step (there was no
PostgreSQL state before it); from then on, a change to the tables is a new entry in both lists,
and `connector.state.base.TABLES` names the columns a copy between them carries.
"""

from __future__ import annotations

__all__ = ["POSTGRES_MIGRATIONS", "SQLITE_MIGRATIONS"]

# SQLite: each entry moves the schema one version up (PRAGMA user_version); never edit one
# that has shipped.
SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed_at INTEGER NOT NULL
    );
    CREATE TABLE tickets (
        ticket TEXT PRIMARY KEY,
        contract TEXT,
        customer TEXT,
        created_at INTEGER,
        facts TEXT,
        results TEXT,
        note TEXT
    );
    CREATE INDEX tickets_by_customer ON tickets (contract, customer, created_at);
    CREATE TABLE journal (
        ticket TEXT PRIMARY KEY,
        note TEXT NOT NULL,
        started_at INTEGER NOT NULL
    );
    CREATE TABLE wakeups (
        ticket TEXT PRIMARY KEY,
        at INTEGER NOT NULL
    );
    CREATE INDEX wakeups_by_time ON wakeups (at);
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed_at INTEGER NOT NULL
    );
    """,
    # The ledger keeps a customer's tickets of a lifetime quota's categories whatever their age;
    # the category, indexed, finds them without reading the rest of the customer's history.
    """
    ALTER TABLE tickets ADD COLUMN category TEXT;
    UPDATE tickets SET category = facts_category(facts) WHERE facts IS NOT NULL;
    CREATE INDEX tickets_by_category ON tickets (contract, customer, category, created_at);
    """,
    # The status changes seen on each ticket (JSON list of {"at", "status"}, oldest first):
    # paused targets need them, and neither helpdesk gives them with the ticket.
    """
    ALTER TABLE tickets ADD COLUMN statuses TEXT;
    """,
    # The batch job a journalled write went in (Zendesk's update_many): a crash with the job
    # in flight is settled from the job's own results, once it has finished.
    """
    ALTER TABLE journal ADD COLUMN job TEXT;
    """,
)

# PostgreSQL: instants are seconds since the epoch (BIGINT), as in SQLite; `leases` holds the
# writer's and the daemon's leases (owner, expiry, an epoch that only grows).
POSTGRES_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed_at BIGINT NOT NULL
    );
    CREATE TABLE tickets (
        ticket TEXT PRIMARY KEY,
        contract TEXT,
        customer TEXT,
        created_at BIGINT,
        facts TEXT,
        results TEXT,
        note TEXT,
        category TEXT,
        statuses TEXT
    );
    CREATE INDEX tickets_by_customer ON tickets (contract, customer, created_at);
    CREATE INDEX tickets_by_category ON tickets (contract, customer, category, created_at);
    CREATE TABLE journal (
        ticket TEXT PRIMARY KEY,
        note TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        job TEXT
    );
    CREATE TABLE wakeups (
        ticket TEXT PRIMARY KEY,
        at BIGINT NOT NULL
    );
    CREATE INDEX wakeups_by_time ON wakeups (at);
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed_at BIGINT NOT NULL
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT,
        expires_at DOUBLE PRECISION NOT NULL,
        epoch BIGINT NOT NULL
    );
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO changes (id, version) VALUES (1, 0);
    """,
)
