//! The accounts a login checks: names and argon2 password hashes in the database.
//!
//! A session is only as good as the login that made it. The source material's login accepts any
//! password ("in production, verify password hash here"); this one stores an argon2id hash (the
//! password hash OWASP recommends, with its recommended cost: 19 MiB of memory, 2 passes) and
//! verifies it. A password hash is slow on purpose, about as slow as a request should ever be,
//! which is one more reason to verify it once per login and keep the result in a session, not on
//! every request.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use shared::Database;
use sqlx::{Executor, Row};

/// The password of the demo's account `id`, which its simulated users type.
pub fn demo_password(id: i64) -> String {
    format!("correct horse battery {id}")
}

/// The name of the demo's account `id`.
pub fn demo_name(id: i64) -> String {
    format!("user{id}")
}

/// An account that passed its password check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The account's ID.
    pub id: i64,
    /// Its login name.
    pub name: String,
}

/// The `accounts` table.
#[derive(Clone)]
pub struct Accounts {
    db: Arc<Database>,
    /// A hash of no one's password, verified when the name is unknown, so that a wrong name takes
    /// as long as a wrong password and a login does not tell which names exist.
    decoy: String,
}

impl Accounts {
    /// Creates the table with `count` demo accounts, each with its own salt.
    pub async fn create(db: Arc<Database>, count: i64) -> anyhow::Result<Accounts> {
        let mut setup = db.setup().await?;
        setup
            .execute(
                "CREATE TABLE accounts (
                    id BIGINT PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    password_hash TEXT NOT NULL
                )",
            )
            .await?;
        for id in 1..=count {
            sqlx::query("INSERT INTO accounts (id, name, password_hash) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(demo_name(id))
                .bind(hash(&demo_password(id))?)
                .execute(&mut *setup)
                .await?;
        }
        setup.commit().await?;
        Ok(Accounts {
            db,
            decoy: hash("no one's password")?,
        })
    }

    /// The account `name` if `password` is its password.
    pub async fn check(&self, name: &str, password: &str) -> anyhow::Result<Option<Account>> {
        let mut conn = self.db.connection().await?;
        let row = sqlx::query("SELECT id, password_hash FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        let (id, stored) = match &row {
            Some(row) => (
                Some(row.try_get::<i64, _>(0)?),
                row.try_get::<String, _>(1)?,
            ),
            None => (None, self.decoy.clone()),
        };
        let matches = verify(password, &stored)?;
        Ok(id.filter(|_| matches).map(|id| Account {
            id,
            name: name.to_owned(),
        }))
    }

    /// The ID of the account `name`, without a password: what the source material's login asks.
    pub async fn find(&self, name: &str) -> anyhow::Result<Option<i64>> {
        let mut conn = self.db.connection().await?;
        Ok(
            sqlx::query_scalar("SELECT id FROM accounts WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?,
        )
    }

    /// Whether `password` is account `id`'s: the confirmation a privilege change asks for.
    pub async fn confirm(&self, id: i64, password: &str) -> anyhow::Result<bool> {
        let mut conn = self.db.connection().await?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        match stored {
            Some(stored) => verify(password, &stored),
            None => Ok(false),
        }
    }
}

/// An argon2id hash of `password` with a fresh 16-byte salt, as a PHC string.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(anyhow::Error::msg)?;
    let hashed = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(anyhow::Error::msg)?;
    Ok(hashed.to_string())
}

/// Whether `password` matches the PHC string `stored`.
fn verify(password: &str, stored: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored).map_err(anyhow::Error::msg)?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}
