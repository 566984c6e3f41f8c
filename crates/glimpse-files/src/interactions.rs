//! Stored interactions (Interactions API, `store: true`), kept in the same database as the files so that one
//! `--database-url` moves all of a deployment's state. Like files, an interaction is visible only to the
//! project that made it, and is gone for clients the moment it expires.

use glimpse_core::GlimpseError;

use crate::record::{now_ms, InteractionRecord};
use crate::store::FileStore;

/// The Interactions API's answer for an id that does not exist, has expired or belongs to another project.
pub fn no_such_interaction(id: &str) -> GlimpseError {
    GlimpseError::NotFound(format!("Interaction {id} was not found."))
}

impl FileStore {
    /// Persists one turn; it expires `interaction_ttl` from now.
    pub async fn put_interaction(
        &self,
        project: &str,
        id: &str,
        previous_id: Option<&str>,
        body: String,
    ) -> Result<(), GlimpseError> {
        let now = now_ms();
        let record = InteractionRecord {
            id: id.to_string(),
            project: project.to_string(),
            previous_id: previous_id.map(str::to_string),
            create_ms: now,
            expire_ms: now + self.config().interaction_ttl.as_millis() as i64,
            body,
        };
        self.db.insert_interaction(&record).await
    }

    pub async fn interaction(&self, project: &str, id: &str) -> Result<InteractionRecord, GlimpseError> {
        match self.db.interaction(id).await? {
            Some(record) if record.project == project && record.expire_ms > now_ms() => Ok(record),
            _ => Err(no_such_interaction(id)),
        }
    }

    pub async fn delete_interaction(&self, project: &str, id: &str) -> Result<(), GlimpseError> {
        self.interaction(project, id).await?;
        self.db.delete_interaction(id).await
    }
}
