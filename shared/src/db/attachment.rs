//! How a second process opens the run's database: the URL and schema, handed over in its
//! environment.

/// How a second process reaches a run's database. A demo that kills a child process mid-run
/// (write-behind's flusher) hands it this through its environment, not its command line, which
/// `ps` would show with the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The database's URL: a SQLite file, or a PostgreSQL database (with its password).
    pub url: String,
    /// The run's PostgreSQL schema; `None` on SQLite.
    pub schema: Option<String>,
}

/// The environment variables an [`Attachment`] travels in.
const ATTACH_URL: &str = "COURSE_ATTACH_DATABASE_URL";
const ATTACH_SCHEMA: &str = "COURSE_ATTACH_SCHEMA";

impl Attachment {
    /// The variables to set in a child's environment.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(ATTACH_URL, self.url.clone())];
        env.extend(self.schema.clone().map(|schema| (ATTACH_SCHEMA, schema)));
        env
    }

    /// The attachment a parent put in this process's environment, if any.
    pub fn from_env() -> Option<Self> {
        Some(Attachment {
            url: std::env::var(ATTACH_URL).ok()?,
            schema: std::env::var(ATTACH_SCHEMA).ok(),
        })
    }
}
