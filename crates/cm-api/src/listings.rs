//! `list_containers` answers kept by the revision they were made from
//! ([`cm_core::Manager::listing_revision`]): at hundreds of containers, a poll that finds nothing
//! changed costs a lookup instead of reading every record, merging the statuses and serializing
//! them again. Any change anywhere (a status, a record written by this or another process) makes
//! a new revision, so a kept answer is never older than the state.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use actix_web::web::Bytes;
use cm_core::{ListingRevision, UserId};

/// At most this many scopes (all, or one user's) are kept; past it the map starts over.
const KEPT: usize = 1024;

/// Kept answers by scope (`None`: every container).
#[derive(Default)]
pub struct ListingAnswers {
    kept: Mutex<HashMap<Option<UserId>, (ListingRevision, Bytes)>>,
}

impl ListingAnswers {
    /// The answer kept for `scope` at `revision`, if any.
    pub fn get(&self, scope: &Option<UserId>, revision: ListingRevision) -> Option<Bytes> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(scope)
            .filter(|(at, _)| *at == revision)
            .map(|(_, body)| body.clone())
    }

    /// Keeps `body` as the answer for `scope` at `revision`.
    pub fn keep(&self, scope: Option<UserId>, revision: ListingRevision, body: Bytes) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= KEPT && !kept.contains_key(&scope) {
            kept.clear();
        }
        kept.insert(scope, (revision, body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_reused_only_at_its_revision() {
        let answers = ListingAnswers::default();
        let at = ListingRevision {
            store: 1,
            statuses: 7,
        };
        answers.keep(None, at, Bytes::from_static(b"[]"));
        assert_eq!(answers.get(&None, at).as_deref(), Some(&b"[]"[..]));
        assert!(
            answers
                .get(
                    &None,
                    ListingRevision {
                        store: 2,
                        statuses: 7
                    }
                )
                .is_none()
        );
        assert!(
            answers
                .get(
                    &None,
                    ListingRevision {
                        store: 1,
                        statuses: 8
                    }
                )
                .is_none()
        );
        let alice = Some(UserId::parse("alice").unwrap());
        assert!(answers.get(&alice, at).is_none(), "another scope");
    }
}
