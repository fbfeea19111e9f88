//! The `users` table: the entity the lessons cache most.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::{CATEGORIES, Database};

/// A registered user.
///
/// `created_at` is a real timestamp, not a string: it survives the trip through the cache as the
/// same type, which a `json.dumps(default=str)` cache does not manage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The primary key.
    pub id: i64,
    /// First and last name.
    pub name: String,
    /// A unique address.
    pub email: String,
    /// Empty for some users: an empty string is a value, not a miss.
    pub bio: String,
    /// Zero for some users: zero is a value, not a miss.
    pub karma: i64,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl Database {
    /// One user by primary key, or `None` if there is no such row.
    pub async fn user(&self, id: i64) -> Result<Option<User>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row =
            sqlx::query("SELECT id, name, email, bio, karma, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Rewrites a user's mutable fields. Returns whether the row existed.
    pub async fn update_user(&self, user: &User) -> Result<bool, sqlx::Error> {
        let mut conn = self.connection().await?;
        let done = sqlx::query(
            "UPDATE users SET name = $1, email = $2, bio = $3, karma = $4 WHERE id = $5",
        )
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.bio)
        .bind(user.karma)
        .bind(user.id)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Users whose name starts with `name_prefix` and whose karma is at least `min_karma`, by id,
    /// at most `limit` of them: a query with several arguments, cached under a hashed key.
    pub async fn search_users(
        &self,
        name_prefix: &str,
        min_karma: i64,
        limit: i64,
    ) -> Result<Vec<User>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let rows = sqlx::query(
            "SELECT id, name, email, bio, karma, created_at FROM users \
             WHERE substr(name, 1, length($1)) = $1 AND karma >= $2 ORDER BY id LIMIT $3",
        )
        .bind(name_prefix)
        .bind(min_karma)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_from_row).collect()
    }
}

/// Creates the table and seeds users `1..=count`.
pub(super) async fn create(
    setup: &mut sqlx::Transaction<'static, Any>,
    count: i64,
) -> Result<(), sqlx::Error> {
    setup
        .execute(
            "CREATE TABLE users (
                id BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                email TEXT NOT NULL,
                bio TEXT NOT NULL,
                karma BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            )",
        )
        .await?;
    for id in 1..=count {
        let user = seed_user(id);
        sqlx::query(
            "INSERT INTO users (id, name, email, bio, karma, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.bio)
        .bind(user.karma)
        .bind(user.created_at.timestamp())
        .execute(&mut **setup)
        .await?;
    }
    Ok(())
}

/// The seed row for user `id`: every tenth has zero karma and every seventh an empty bio.
/// Deterministic: the same id always holds the same data, so runs compare.
pub fn seed_user(id: i64) -> User {
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Linus", "Barbara", "Ken", "Radia", "Alan", "Edsger",
    ];
    const LAST: [&str; 8] = [
        "Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Perlman", "Turing", "Dijkstra",
    ];
    let first = FIRST[(id % 8) as usize];
    let last = LAST[((id / 8) % 8) as usize];
    User {
        id,
        name: format!("{first} {last}"),
        email: format!(
            "{}.{}{id}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        bio: if id % 7 == 0 {
            String::new()
        } else {
            format!(
                "Member #{id}, writes about {}.",
                CATEGORIES[(id % 5) as usize]
            )
        },
        karma: if id % 10 == 0 { 0 } else { (id * 37) % 1000 },
        created_at: DateTime::from_timestamp(1_700_000_000 + id * 3_600, 0)
            .expect("valid timestamp"),
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    let created: i64 = row.try_get("created_at")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        bio: row.try_get("bio")?,
        karma: row.try_get("karma")?,
        created_at: DateTime::from_timestamp(created, 0)
            .ok_or_else(|| sqlx::Error::Decode(format!("bad timestamp {created}").into()))?,
    })
}
