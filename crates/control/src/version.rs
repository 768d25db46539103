//! Function versions: publishing `$LATEST` as an immutable, numbered snapshot of its code and
//! configuration. (The PublishVersion / ListVersionsByFunction operations build on this.)

use crate::configuration::{now_timestamp, VersionRecord};
use crate::lifecycle::Status;
use crate::state::Draft;

/// Publishes the draft's `$LATEST` as a new version and returns its number — or, as AWS does,
/// returns the newest published version when `$LATEST` has not changed since it was published.
pub fn publish(draft: &mut Draft, description: Option<String>) -> u64 {
    let latest = &draft.doc.latest;
    if let Some((n, newest)) = draft.versions().iter().next_back() {
        let mut same = newest.config.clone();
        same.description.clone_from(&latest.config.description);
        if same == latest.config {
            return *n;
        }
    }
    let n = draft.doc.last_published + 1;
    let mut config = latest.config.clone();
    if let Some(d) = description {
        config.description = d;
    }
    let record = VersionRecord {
        version: n.to_string(),
        snapshot_id: uuid::Uuid::new_v4().to_string(),
        revision_id: uuid::Uuid::new_v4().to_string(),
        last_modified: now_timestamp(),
        config,
        status: Status::creating(),
    };
    draft.doc.last_published = n;
    draft.put_version(n, record);
    n
}
