"""The state's schema on each backend, as versioned migrations.

Each backend has its own list; an entry moves the schema one version up and is never edited
once shipped. SQLite keeps its version in `PRAGMA user_version`, PostgreSQL in the
`schema_version` table. PostgreSQL's first version is SQLite's fourth as one step (there was no
PostgreSQL state before it); from then on, a change to the tables is a new entry in both lists
(SQLite's fifth is PostgreSQL's second),
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
    # Tenants: every row belongs to one helpdesk account (`[[tenants]]`); the rows of the one
    # account kept so far are the `default` tenant's. SQLite cannot change a primary key in
    # place: each table is made anew, filled, and put in the old one's place. `changes` counts
    # each tenant's write transactions (`Store.data_version`), as on PostgreSQL.
    """
    CREATE TABLE cursors_new (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        changed_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    INSERT INTO cursors_new SELECT 'default', name, value, changed_at FROM cursors;
    DROP TABLE cursors;
    ALTER TABLE cursors_new RENAME TO cursors;
    CREATE TABLE tickets_new (
        tenant TEXT NOT NULL,
        ticket TEXT NOT NULL,
        contract TEXT,
        customer TEXT,
        created_at INTEGER,
        facts TEXT,
        results TEXT,
        note TEXT,
        category TEXT,
        statuses TEXT,
        PRIMARY KEY (tenant, ticket)
    );
    INSERT INTO tickets_new SELECT 'default', ticket, contract, customer, created_at, facts,
        results, note, category, statuses FROM tickets;
    DROP TABLE tickets;
    ALTER TABLE tickets_new RENAME TO tickets;
    CREATE INDEX tickets_by_customer ON tickets (tenant, contract, customer, created_at);
    CREATE INDEX tickets_by_category
        ON tickets (tenant, contract, customer, category, created_at);
    CREATE TABLE journal_new (
        tenant TEXT NOT NULL,
        ticket TEXT NOT NULL,
        note TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        job TEXT,
        PRIMARY KEY (tenant, ticket)
    );
    INSERT INTO journal_new SELECT 'default', ticket, note, started_at, job FROM journal;
    DROP TABLE journal;
    ALTER TABLE journal_new RENAME TO journal;
    CREATE TABLE wakeups_new (
        tenant TEXT NOT NULL,
        ticket TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (tenant, ticket)
    );
    INSERT INTO wakeups_new SELECT 'default', ticket, at FROM wakeups;
    DROP TABLE wakeups;
    ALTER TABLE wakeups_new RENAME TO wakeups;
    CREATE INDEX wakeups_by_time ON wakeups (tenant, at);
    CREATE TABLE tokens_new (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        changed_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    INSERT INTO tokens_new SELECT 'default', name, value, changed_at FROM tokens;
    DROP TABLE tokens;
    ALTER TABLE tokens_new RENAME TO tokens;
    CREATE TABLE changes (
        tenant TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
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
    # SQLite's fifth: tenants. Every row carries its tenant (the one account's so far are the
    # `default` tenant's); the leases are named by tenant (`tenant:<name>`, `writer:<name>`),
    # and the change counter is kept per tenant.
    """
    ALTER TABLE cursors ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE cursors DROP CONSTRAINT cursors_pkey;
    ALTER TABLE cursors ADD PRIMARY KEY (tenant, name);
    ALTER TABLE cursors ALTER COLUMN tenant DROP DEFAULT;
    ALTER TABLE tickets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE tickets DROP CONSTRAINT tickets_pkey;
    ALTER TABLE tickets ADD PRIMARY KEY (tenant, ticket);
    ALTER TABLE tickets ALTER COLUMN tenant DROP DEFAULT;
    DROP INDEX tickets_by_customer;
    DROP INDEX tickets_by_category;
    CREATE INDEX tickets_by_customer ON tickets (tenant, contract, customer, created_at);
    CREATE INDEX tickets_by_category
        ON tickets (tenant, contract, customer, category, created_at);
    ALTER TABLE journal ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE journal DROP CONSTRAINT journal_pkey;
    ALTER TABLE journal ADD PRIMARY KEY (tenant, ticket);
    ALTER TABLE journal ALTER COLUMN tenant DROP DEFAULT;
    ALTER TABLE wakeups ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE wakeups DROP CONSTRAINT wakeups_pkey;
    ALTER TABLE wakeups ADD PRIMARY KEY (tenant, ticket);
    ALTER TABLE wakeups ALTER COLUMN tenant DROP DEFAULT;
    DROP INDEX wakeups_by_time;
    CREATE INDEX wakeups_by_time ON wakeups (tenant, at);
    ALTER TABLE tokens ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE tokens DROP CONSTRAINT tokens_pkey;
    ALTER TABLE tokens ADD PRIMARY KEY (tenant, name);
    ALTER TABLE tokens ALTER COLUMN tenant DROP DEFAULT;
    UPDATE leases SET name = 'tenant:default' WHERE name = 'daemon';
    UPDATE leases SET name = 'writer:default' WHERE name = 'writer';
    DROP TABLE changes;
    CREATE TABLE changes (
        tenant TEXT PRIMARY KEY,
        version BIGINT NOT NULL
    );
    """,
)
